"""Every callable a script can reach, each marked bounded (with the cap that bounds it) or wrapped.

*wrapped*: a Python-level stand-in in this package (wrapped.py, guards.py, safe_builtins.py, env.py) that
refuses work over a named cap or feeds C code through the timer. *bounded*: C (or stdlib Python) code whose
cost is bounded by a cap that is enforced: the text says which. tests/sandbox/test_reachability.py walks
everything scripts reach (audit.py) and fails on a callable in neither list, on a "wrapped" one that is not
a wrapper of this package, and on a "bounded" one whose reason names no cap.
"""
from __future__ import annotations

import builtins
import logging

from backworks.sandbox import rules

logger = logging.getLogger(__name__)

# Caps a "bounded" reason may name (rules.py, wrapped.py, or the per-call budgets themselves).
CAPS = ("O(1)", "MAX_INT_BITS", "MAX_SEQUENCE", "MAX_SORT", "MAX_FORMAT_WIDTH", "memory_mb", "timeout_ms",
        "int_max_str_digits", "MAX_REGEX_TEXT", "MAX_LOG_LINE", "max_value_bytes")

LINEAR = "linear in one value, whose size the memory budget bounds (memory_mb)"
PYTHON = "stdlib Python code: the timer interrupts it between bytecodes (timeout_ms); C steps linear (memory_mb)"
CONSTANT = "O(1)"
NUMERIC = "O(1) on floats; integers are at most MAX_INT_BITS bits (guards, int(), from_bytes, getrandbits)"
OUTPUT = "output at most a constant times the input; the input is bounded by memory_mb"
REPR = "recursive C walk whose output grows with its work: memory_mb stops it"

_BOUNDED_GROUPS = {
    CONSTANT: {
        # Error, JSONDecodeError: `except re.error` / `except json.JSONDecodeError` resolved at load (rewrites.py)
        "builtins": "abs bool callable chr len next ord reversed round slice __import__ Error JSONDecodeError",
        "list": "append clear copy insert pop reverse",
        "dict": "clear copy get items keys pop popitem setdefault values",
        "set": "add clear copy discard pop remove", "frozenset": "copy",
        "deque": "append appendleft clear copy insert pop popleft remove reverse rotate",
        "OrderedDict": "move_to_end", "Counter": "total", "range": "count index", "slice": "indices",
        "generator": "close send throw", "BaseException": "add_note with_traceback",
        "mappingproxy": "get items keys values copy", "property": "deleter fget getter setter",
        "dict_items": "isdisjoint", "dict_keys": "isdisjoint",
        "datetime": "astimezone combine ctime date datetime dst fromisocalendar fromordinal fromtimestamp now "
                    "replace time timedelta timestamp timetuple timetz timezone today tzname utcfromtimestamp "
                    "utcnow utcoffset utctimetuple",
        "date": "ctime fromisocalendar fromordinal fromtimestamp isocalendar isoweekday replace timetuple today "
                "toordinal weekday",
        "time": "dst gmtime localtime mktime monotonic monotonic_ns perf_counter perf_counter_ns replace struct_time "
                "time time_ns tzname utcoffset",
        "timedelta": "total_seconds", "timezone": "dst fromutc tzname utcoffset",
        "uuid": "UUID uuid4", "types": "SimpleNamespace",
        "collections": "", "hashlib": "blake2b blake2s md5 sha1 sha224 sha256 sha384 sha3_256 sha3_512 sha512",
        "HASH": "copy digest hexdigest", "blake2b": "copy digest hexdigest", "blake2s": "copy digest hexdigest",
        "HMAC": "copy digest hexdigest",
    },
    NUMERIC: {
        "builtins": "bin complex divmod float hex oct",
        "math": "acos acosh asin asinh atan atan2 atanh cbrt ceil copysign cos cosh degrees erf erfc exp exp2 expm1 "
                "fabs floor fmod frexp gamma isclose isfinite isinf isnan ldexp lgamma log log10 log1p log2 modf "
                "nextafter pow radians remainder sin sinh sqrt tan tanh trunc ulp dist hypot",
        "int": "as_integer_ratio bit_count bit_length conjugate to_bytes", "float": "as_integer_ratio conjugate "
        "fromhex hex is_integer", "complex": "conjugate",
    },
    LINEAR: {
        "list": "count index remove", "tuple": "count index",
        "deque": "count index", "str": "capitalize casefold count encode endswith find index isalnum isalpha "
        "isascii isdecimal isdigit isidentifier islower isnumeric isprintable isspace istitle isupper lower "
        "lstrip maketrans partition removeprefix removesuffix rfind rindex rpartition rsplit rstrip split "
        "splitlines startswith strip swapcase title upper",
        "bytes": "capitalize count decode endswith find fromhex hex index isalnum isalpha isascii isdigit islower "
                 "isspace istitle isupper lower lstrip maketrans partition removeprefix removesuffix rfind rindex "
                 "rpartition rsplit rstrip split splitlines startswith strip swapcase title upper",
        "bytearray": "append capitalize clear copy count decode endswith find fromhex hex index insert isalnum "
                     "isalpha isascii isdigit islower isspace istitle isupper lower lstrip maketrans partition pop "
                     "remove removeprefix removesuffix reverse rfind rindex rpartition rsplit rstrip split "
                     "splitlines startswith strip swapcase title upper",
        "hashlib": "", "HASH": "update", "blake2b": "update", "blake2s": "update", "HMAC": "update",
        "hmac": "compare_digest", "json": "loads",
        "base64": "b16decode b16encode b32decode b32encode b64decode b64encode standard_b64decode "
                  "standard_b64encode urlsafe_b64decode urlsafe_b64encode",
        "datetime": "fromisoformat isoformat", "date": "fromisoformat isoformat strftime",
        "time": "fromisoformat isoformat strftime",
    },
    PYTHON: {
        "hmac": "digest new", "hashlib": "new", "uuid": "uuid3 uuid5", "string": "capwords",
        "urllib.parse": "parse_qs parse_qsl quote quote_plus unquote unquote_plus urldefrag urlencode urljoin "
                        "urlparse urlsplit urlunparse urlunsplit",
        "SplitResult": "geturl", "ParseResult": "geturl", "DefragResult": "geturl", "SplitResultBytes": "geturl",
        "ParseResultBytes": "geturl", "DefragResultBytes": "geturl", "_ResultMixinBytes": "decode",
        "Counter": "copy subtract", "OrderedDict": "clear copy items keys pop popitem setdefault values",
        "defaultdict": "copy", "_ResultMixinStr": "encode",
        "_Match": "end group groupdict groups span start", "re": "escape",
    },
    REPR: {"builtins": "ascii repr"},
    # `log` (logs.py): what a script passes is shown item by item within the line's room (logs.log_text), never
    # through str() or repr() of a container.
    "at most MAX_LOG_LINES lines of MAX_LOG_LINE characters and MAX_LOG_CALL_BYTES bytes a call, values shown "
    "in O(MAX_LOG_LINE) steps": {"ScriptLog": "debug error info warning"},
    # `state` (state_facade.py over backworks/state.py; a Redis store's calls time out after 0.5 s)
    "json.loads of stored text of at most max_value_bytes (state.max_value_bytes)": {"StateFacade": "get incr"},
    "the pattern is compiled by RE2 within its default max_mem (8 MB program); linear (MAX_REGEX_TEXT applies to "
    "matching)": {"re": "compile"},
}

_WRAPPED_GROUPS = {
    "safe_builtins.py / wrapped.py: big or endless iterables go through a Python-level iterator; sizes capped "
    "(MAX_RANGE, MAX_SORT, MAX_SEQUENCE, MAX_INT_BITS)": {
        "builtins": "all any bytearray bytes dict enumerate filter frozenset getattr hasattr hash int isinstance "
                    "issubclass iter list map max min pow range set sorted str sum tuple zip format",
        "collections": "Counter OrderedDict defaultdict deque",
    },
    "guards.py: output size checked before the C call (MAX_SEQUENCE, MAX_FORMAT_WIDTH, MAX_SORT)": {
        "str": "center expandtabs format format_map join ljust replace rjust zfill",
        "bytes": "center expandtabs join ljust replace rjust zfill",
        "bytearray": "center expandtabs join ljust replace rjust zfill", "list": "sort",
    },
    "wrapped.py: arguments fed through the timer, long texts sliced with checkpoints, counts capped": {
        "list": "extend", "bytearray": "extend translate", "deque": "extend extendleft",
        "dict": "fromkeys update", "OrderedDict": "fromkeys update", "defaultdict": "fromkeys update",
        "Counter": "elements fromkeys most_common update",
        "set": "difference difference_update intersection intersection_update isdisjoint issubset issuperset "
               "symmetric_difference symmetric_difference_update union update",
        "frozenset": "difference intersection isdisjoint issubset issuperset symmetric_difference union",
        "str": "translate", "bytes": "translate", "int": "from_bytes", "bool": "from_bytes",
        "_Regexp": "findall finditer fullmatch match search split sub subn possiblematchrange",
        "re": "findall finditer fullmatch match search split sub subn",
        "math": "comb factorial fsum gcd isqrt lcm perm prod", "hashlib": "pbkdf2_hmac", "json": "dumps",
        "HASHXOF": "digest hexdigest",
        "random": "choice choices gauss getrandbits randint random randrange sample shuffle uniform",
    },
    "state_facade.py: the value is measured before the host's json.dumps (its JSON size at least, shared parts "
    "counted each time) and refused over state.max_value_bytes": {"StateFacade": "set"},
    "uncached.py: without the library's process-wide cache of its argument (re2's template cache); strptime "
    "formats capped at MAX_STRPTIME_FORMAT (each distinct format stays in _strptime's cache)": {
        "_Match": "expand", "datetime": "strptime", "time": "strptime",
    },
}


def _expand(groups: dict) -> dict:
    return {f"{owner}.{name}": reason for reason, owners in groups.items()
            for owner, names in owners.items() for name in names.split()}


BOUNDED = _expand(_BOUNDED_GROUPS)
BOUNDED.update({f"builtins.{name}": "the exception classes scripts catch and raise: constructing one is O(1)"
                for name in rules.EXCEPTION_NAMES if getattr(builtins, name).__name__ == name})  # not IOError
WRAPPED = _expand(_WRAPPED_GROUPS)
