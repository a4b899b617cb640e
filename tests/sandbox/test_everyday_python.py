"""Ordinary Python gives the same result in the sandbox as in plain Python."""
from __future__ import annotations

import textwrap

import pytest

from backworks.sandbox import Budget, Sandbox, compile_script
from backworks.sandbox.values import plain

# Each snippet is the body of `def handle(request):` and ends with `return <value>`.
CASES = {
    "dict_item_augmented": "d = {'a': 1}\nd['a'] += 5\nd['a'] *= 2\nreturn d",
    "nested_item_augmented": "d = {'a': [1, 2]}\nd['a'][1] += 10\nreturn d",
    "attribute_augmented": "from types import SimpleNamespace\no = SimpleNamespace(n=1)\no.n += 41\nreturn o.n",
    "name_augmented": "n = 2\nn **= 10\nn -= 1\nn //= 3\nn %= 100\nreturn n",
    "list_augmented_extend": "a = [1]\na += [2, 3]\na *= 2\nreturn a",
    "sorted_key_reverse": "return sorted(['bb', 'a', 'ccc'], key=len, reverse=True)",
    "zip_dict": "return dict(zip(['a', 'b'], [1, 2]))",
    "tuple_of_range": "return list(tuple(range(5)))",
    "min_max_key": "return [min([3, 1, 2]), max('abc', key=ord), min(4, 5)]",
    "sum_start": "return sum([1, 2, 3], 10)",
    "enumerate_start": "return list(enumerate('ab', start=1))",
    "any_all": "return [any(x > 2 for x in [1, 3]), all([]), all([1, 0])]",
    "map_filter": "return list(map(str, filter(lambda x: x % 2, range(7))))",
    "list_comprehension": "return [x * x for x in range(6) if x != 3]",
    "dict_comprehension": "return {k: v for k, v in [('a', 1), ('b', 2)]}",
    "set_comprehension": "return sorted({x % 3 for x in range(10)})",
    "nested_comprehension": "return [[i * j for j in range(3)] for i in range(3)]",
    "generator_expression_sum": "return sum(x for x in range(100))",
    "fstring_format_spec": "x = 3.14159\nreturn f'{x:.2f}|{42:>6}|{255:#x}|{1234567:,}|{\"s\"!r}'",
    "fstring_nested_spec": "w = 8\nreturn f'{\"hi\":^{w}}|{7:0{w}d}'",
    "str_format_method": "return ['{} {name} {}'.format('a', 'c', name='b'), '{0[k]}'.format({'k': 1})]",
    "percent_format": "return '%s-%05.1f-%d' % ('x', 3.14159, 7)",
    "try_except_finally": ("out = []\ntry:\n    out.append(1)\n    1 / 0\nexcept ZeroDivisionError as e:\n"
                           "    out.append(str(e))\nelse:\n    out.append('else')\nfinally:\n    out.append('fin')\n"
                           "return out"),
    "try_except_tuple": "try:\n    int('x')\nexcept (TypeError, ValueError):\n    return 'caught'",
    "raise_and_catch_exception": "try:\n    raise KeyError('k')\nexcept Exception as e:\n    return repr(e)",
    "closure_counter": ("def make():\n    count = 0\n    def inc():\n        nonlocal count\n        count += 1\n"
                        "        return count\n    return inc\nf = make()\nf()\nreturn f()"),
    "args_kwargs": "def f(*args, **kwargs):\n    return [list(args), sorted(kwargs.items())]\nreturn f(1, 2, b=3, a=4)",
    "call_with_star": "def f(a, b, c=0):\n    return a + b + c\nargs = [1, 2]\nkw = {'c': 3}\nreturn f(*args, **kw)",
    "keyword_only_defaults": "def f(a, *, b=2):\n    return a * b\nreturn [f(3), f(3, b=5)]",
    "underscore_names": "_total = 0\nfor _i in range(4):\n    _total += _i\n_ = 'ignored'\nreturn _total",
    "tuple_unpacking": "a, (b, c), *rest = [1, (2, 3), 4, 5]\nreturn [a, b, c, rest]",
    "walrus": "data = [1, 2, 3]\nif (n := len(data)) > 2:\n    return n",
    "lambda_sort_items": "d = {'b': 2, 'a': 3}\nreturn sorted(d.items(), key=lambda kv: kv[1])",
    "datetime_strptime": ("import datetime\nd = datetime.datetime.strptime('2024-03-05 10:20', '%Y-%m-%d %H:%M')\n"
                          "return [d.isoformat(), (d + datetime.timedelta(days=1)).strftime('%A')]"),
    "datetime_fstring": "from datetime import date\nreturn f'{date(2024, 1, 2):%d/%m/%Y}'",
    "json_roundtrip": "import json\nreturn json.loads(json.dumps({'a': [1, 2.5, None, True]}, sort_keys=True))",
    "json_dumps_indent": "import json\nreturn json.dumps({'b': 1, 'a': [1]}, indent=2, sort_keys=True)",
    "regex_findall_sub": "import re\nreturn [re.findall(r'\\d+', 'a1b22c333'), re.sub(r'(?i)X', '-', 'axbXc')]",
    "regex_match_groups": ("import re\nm = re.match(r'(\\w+)@(\\w+)\\.com', 'bob@example.com')\n"
                           "return [m.group(1), m.group(2), m.groups()]"),
    "hashlib_hmac": ("import hashlib, hmac\nh = hashlib.sha256(b'abc').hexdigest()\n"
                     "m = hmac.new(b'k', b'msg', 'sha256').hexdigest()\nreturn [h, m, hmac.compare_digest(h, h)]"),
    "base64_roundtrip": "import base64\nreturn base64.b64decode(base64.b64encode(b'hello')).decode()",
    "urllib_parse": ("from urllib.parse import urlencode, parse_qs, quote\n"
                     "return [urlencode({'a': 1, 'b': 'x y'}), parse_qs('a=1&a=2'), quote('a/b c')]"),
    "math_functions": "import math\nreturn [math.sqrt(16), math.floor(2.7), math.isclose(0.1 + 0.2, 0.3), math.pi]",
    "collections_counter": "from collections import Counter\nreturn Counter('abracadabra').most_common(2)",
    "collections_defaultdict": ("from collections import defaultdict\nd = defaultdict(list)\n"
                                "for k, v in [('a', 1), ('a', 2)]:\n    d[k].append(v)\nreturn dict(d)"),
    "string_methods": ("s = '  Hello, World  '\n"
                       "return [s.strip().lower(), s.split(','), '-'.join(['a', 'b']), s.count('l')]"),
    "string_padding": "return ['7'.zfill(3), 'ab'.ljust(4, '.'), 'ab'.center(6, '*'), 'a-b-c'.replace('-', '+')]",
    "slicing": "s = list(range(10))\nreturn [s[2:5], s[::-2], 'abcdef'[1:-1]]",
    "while_else_break": "i = 0\nwhile i < 10:\n    i += 1\n    if i == 4:\n        break\nelse:\n    i = -1\nreturn i",
    "isinstance_checks": "return [isinstance([], list), isinstance({}, dict), isinstance('x', (int, str))]",
    "dict_methods": "d = {'a': 1}\nd.update(b=2)\nd.setdefault('c', 3)\nreturn [sorted(d), d.get('z', 0), d.pop('a')]",
    "set_operations": "a = {1, 2, 3}\nb = {2, 3, 4}\nreturn [sorted(a & b), sorted(a | b), sorted(a - b)]",
    "int_conversions": "return [int('ff', 16), hex(255), bin(5), round(2.567, 2), divmod(17, 5), abs(-3)]",
    "reversed_and_iter_next": "it = iter(reversed([1, 2, 3]))\nreturn [next(it), next(it), next(it, None)]",
    "list_sort_method": "a = [3, 1, 2]\na.sort(reverse=True)\nreturn a",
    "global_statement": "def bump():\n    global COUNT\n    COUNT = 5\nbump()\nreturn COUNT",
    "conditional_expression": "x = 5\nreturn 'big' if x > 3 else 'small'",
    "chained_comparison": "x = 5\nreturn 1 < x <= 5 < 10",
    "annotated_assignment": "x: int = 5\ny: str\nreturn x",
    "defaultdict_augmented": ("from collections import defaultdict, Counter\nd = defaultdict(int)\n"
                              "for w in 'a b a'.split():\n    d[w] += 1\nc = Counter()\nc['x'] += 2\n"
                              "return [dict(d), dict(c)]"),
    "slice_augmented": "a = [1, 2, 3, 4]\na[1:3] += [9]\nreturn a",
    "unbound_str_methods": "return [str.join('-', ['a', 'b']), str.upper('x'), list(map(str.strip, [' a ']))]",
    "getattr_default": "return [getattr('x', 'upper')(), getattr({}, 'missing', 'dflt'), hasattr('x', 'lower')]",
}


def _module(body: str) -> str:
    return "def handle(request):\n" + textwrap.indent(body, "    ") + "\n"


def _plain_python(body: str):
    scope: dict = {}
    exec(_module(body), scope)
    return plain(scope["handle"]({}))  # hooks return plain data: tuples arrive as lists


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox("inline", {})
    yield box
    box.close()


def test_there_are_at_least_forty_everyday_constructs():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", sorted(CASES))
def test_everyday_construct_matches_plain_python(sandbox, name):
    body = CASES[name]
    script = compile_script(_module(body), f"everyday/{name}.py")
    assert sandbox.load(f"everyday:{name}", script, {}, Budget()).ok
    outcome = sandbox.call(f"everyday:{name}", "handle", ({},), Budget(timeout_ms=1000))
    assert outcome.kind == "ok", outcome.message
    assert outcome.value == _plain_python(body)
