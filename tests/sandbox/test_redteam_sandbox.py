"""Every misbehaving script in tests/data/plugins/ fails cleanly, on time, under both isolations."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from backworks.sandbox import Budget, Sandbox, ScriptError, Step, compile_script

CORPUS = Path(__file__).resolve().parent.parent / "data" / "plugins"
SCRIPTS = sorted(CORPUS.glob("*.py"))
BUDGET = Budget(timeout_ms=100, memory_mb=64)
SLACK_S = 0.050
ATTEMPTS = 2  # a second try only when the first overran: the machine may be busy with other work
GOOD = compile_script("def before_request(request):\n    request['headers']['x-good'] = 'yes'\n    return request\n",
                      "good.py")
REQUEST = {"method": "GET", "path": "/orders", "path_params": {}, "query": {"a": "1"},
           "headers": {"accept": "*/*"}, "body": None, "json": None, "client_ip": "127.0.0.1",
           "endpoint": "orders"}


def header(path: Path) -> dict:
    """Parse '# expect: <kinds> -- <attack>' and the optional '# inline: skip (...)' line."""
    lines = path.read_text().splitlines()
    match = re.match(r"# expect: ([a-z_ |]+?) -- (.+)$", lines[0])
    assert match, f"{path.name}: first line must be '# expect: <kind> -- <what it attacks>'"
    inline = lines[1][len("# inline: "):] if lines[1].startswith("# inline: ") else ""
    return {"expect": set(match.group(1).split(" | ")), "attack": match.group(2), "inline": inline}


@pytest.fixture(scope="module")
def sandboxes():
    """One Sandbox per isolation for the whole corpus, with a known-good plugin loaded."""
    boxes = {name: Sandbox(name, {}) for name in ("inline", "process")}
    for box in boxes.values():
        assert box.load("plugin:good", GOOD, {}, BUDGET).ok
    yield boxes
    for box in boxes.values():
        box.close()


def test_corpus_is_large_enough_and_well_formed():
    assert len(SCRIPTS) >= 60
    kinds = {"load_error", "ok", "error", "timeout", "memory", "invalid", "crash"}
    for path in SCRIPTS:
        assert header(path)["expect"] <= kinds, path.name


@pytest.mark.parametrize("isolation", ["inline", "process"])
@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_misbehaving_script_fails_cleanly_within_budget(sandboxes, isolation, path):
    info = header(path)
    if isolation == "inline" and info["inline"].startswith("skip"):
        pytest.skip(info["inline"])
    source = path.read_text()
    if "load_error" in info["expect"]:
        with pytest.raises(ScriptError) as caught:
            compile_script(source, f"plugins/{path.name}")
        assert all(p.startswith(f"plugins/{path.name}:") for p in caught.value.problems)
        return
    box = sandboxes[isolation]
    script = compile_script(source, f"plugins/{path.name}")
    key = f"plugin:{path.stem}"
    assert box.load(key, script, {}, BUDGET).ok
    timings = []
    for _ in range(ATTEMPTS):
        box.collect()  # what earlier calls left is freed after their response, off this call's clock (as in the app)
        started = time.monotonic()
        result = box.run_phase("before_request", [Step(key, BUDGET, "open")], dict(REQUEST))
        timings.append(time.monotonic() - started)
        (name, outcome), = result.outcomes
        assert outcome.kind in info["expect"], f"{outcome.kind}: {outcome.message}"
        assert not outcome.ok
        assert result.request == REQUEST and not result.short_circuit
        if timings[-1] < BUDGET.timeout_ms / 1000 + SLACK_S:
            break
    assert min(timings) < BUDGET.timeout_ms / 1000 + SLACK_S, f"took {[round(t * 1000) for t in timings]} ms"
    after = box.run_phase("before_request", [Step("plugin:good", BUDGET, "open")], dict(REQUEST))
    assert after.outcomes[0][1].kind == "ok"
    assert after.request["headers"] == {"accept": "*/*", "x-good": "yes"}
