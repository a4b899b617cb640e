"""Round-two red team, section 1: no data leaks from one call to the next (tests/data/leaks/, both isolations).

Each script tries to carry call 1's Authorization header into call 2 and reports what it found in
`x-seen`. Its first line is `# expect: refused | isolated -- <attack>`: `refused` scripts must be refused at
load with the "build it inside the hook" hint; `isolated` ones load, and call 2 must answer exactly as it
does on a fresh load that never saw call 1.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from backworks.sandbox import Budget, Sandbox, Step, compile_script

LEAKS = sorted((Path(__file__).resolve().parent.parent / "data" / "leaks").glob("*.py"))
REQUEST = {"method": "GET", "path": "/", "path_params": {}, "query": {}, "headers": {}, "body": None, "json": None,
           "client_ip": "127.0.0.1", "endpoint": "e"}
SECRET = {"authorization": "Bearer secret-of-call-1"}


def expectation(path: Path) -> str:
    match = re.match(r"# expect: (refused|isolated) -- .+$", path.read_text().splitlines()[0])
    assert match, f"{path.name}: first line must be '# expect: refused|isolated -- <attack>'"
    return match.group(1)


@pytest.fixture(scope="module", params=["inline", "process"])
def box(request):
    sandbox = Sandbox(request.param, {})
    yield sandbox
    sandbox.close()


def call(box, key: str, headers: dict) -> tuple:
    result = box.run_phase("before_request", [Step(key, Budget(), "open")], dict(REQUEST, headers=dict(headers)))
    outcome = result.outcomes[0][1]
    return outcome.kind, result.request["headers"], outcome.logs


def test_leak_corpus_is_well_formed():
    assert len(LEAKS) >= 7
    for path in LEAKS:
        expectation(path)


@pytest.mark.parametrize("path", LEAKS, ids=[p.stem for p in LEAKS])
def test_second_call_answers_as_if_the_first_never_happened(box, path):
    script = compile_script(path.read_text(), f"plugins/{path.name}")
    loaded = box.load(f"leak:{path.stem}", script, {}, Budget())
    if expectation(path) == "refused":
        assert loaded.kind == "error"
        assert loaded.message.startswith(f"{path.name}: module-level value ")
        assert loaded.message.endswith("build it inside the hook (module-level values must be plain data, the "
                                       "script's own functions or imported names)")
        return
    assert loaded.ok, loaded.message
    assert box.load(f"fresh:{path.stem}", script, {}, Budget()).ok
    expected = call(box, f"fresh:{path.stem}", {})
    call(box, f"leak:{path.stem}", SECRET)
    after = call(box, f"leak:{path.stem}", {})
    assert "secret-of-call-1" not in repr(after)
    assert after == expected
