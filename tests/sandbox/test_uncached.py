"""Library functions scripts call without the libraries' process-wide caches: same results, nothing cached."""
from __future__ import annotations

import datetime
import time
import urllib.parse

import pytest
import re2

from backworks.sandbox import env, uncached

URLS = ["http://u:p@h:8/a/b;p?q=1&r=2#f", "//h/p", "/rel?x", b"https://h/p?q#f", "mailto:a@b"]
CACHES = [urllib.parse.urlsplit, urllib.parse.quote_from_bytes.__globals__["_byte_quoter_factory"],
          re2._Regexp._make, re2._Match._split]


def cache_sizes() -> list:
    return [cache.cache_info().currsize for cache in CACHES]


@pytest.mark.parametrize("template", [r"[\1|\g<n>|\g<1>]\n", "x", "\\\\", r"\t\g<0>", b"<\\1>"])
def test_sub_and_expand_give_re2_results_without_its_caches(template):
    text = "ab a cab" if isinstance(template, str) else b"ab a cab"
    pattern = r"(a)(?P<n>b)?" if isinstance(template, str) else rb"(a)(?P<n>b)?"
    expected = re2.compile(pattern).subn(template, text)  # fills re2's caches: before the measurement
    before = cache_sizes()
    regexp = uncached.regex_compile(pattern)
    assert uncached.regex_subn(regexp, template, text) == expected
    assert uncached.regex_subn(regexp, template, text, 1) == re2.compile(pattern).subn(template, text, 1)
    assert uncached.regex_sub(regexp, template, text, -1) == text
    match = regexp.search(text)
    assert uncached.regex_expand(match, template) == match.expand(template)
    assert cache_sizes() == before


def test_url_functions_match_the_library_and_cache_nothing():
    parse = env.FACADES["urllib.parse"]
    relative = {str: "c/d", bytes: b"c/d"}
    expected = [(urllib.parse.urlparse(u), urllib.parse.urldefrag(u), urllib.parse.urljoin(u, relative[type(u)]))
                for u in URLS]
    quoted = urllib.parse.quote("a b/ü", safe="/ü-unique")
    before = cache_sizes()
    assert [(parse.urlparse(u), parse.urldefrag(u), parse.urljoin(u, relative[type(u)])) for u in URLS] == expected
    assert parse.quote("a b/ü", safe="/ü-unique") == quoted
    assert parse.urlencode({"q": "a b", "r": ["1", "2"]}, doseq=True) == "q=a+b&r=1&r=2"
    assert cache_sizes()[:2] == before[:2]


def test_without_caches_rebinds_every_function_and_unwraps_every_lru_cache():
    namespace = uncached.without_caches(urllib.parse)
    assert namespace["urlsplit"] is not urllib.parse.urlsplit and not hasattr(namespace["urlsplit"], "cache_info")
    assert namespace["urlparse"].__globals__ is namespace
    factory = namespace["quote_from_bytes"].__globals__["_byte_quoter_factory"]
    assert factory.__code__ is urllib.parse._byte_quoter_factory.__wrapped__.__code__  # the function under the cache
    assert vars(urllib.parse)["urlsplit"] is urllib.parse.urlsplit  # the library itself is untouched


@pytest.mark.parametrize("parse", [datetime.datetime.strptime, time.strptime], ids=["datetime", "time"])
def test_strptime_formats_are_capped(parse):
    checked = uncached.strptime(parse)
    assert checked("2020-01-02", "%Y-%m-%d") == parse("2020-01-02", "%Y-%m-%d")
    with pytest.raises(ValueError) as caught:
        checked("2020", "%Y" + " " * 200)
    assert str(caught.value) == "a strptime format of 202 characters exceeds the sandbox limit of 200"
