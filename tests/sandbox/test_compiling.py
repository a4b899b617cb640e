"""The compiling child: one script in as JSON, its code object (marshal) or the policy's refusals out."""
from __future__ import annotations

import json
import marshal
import subprocess
import sys


def run_child(source: str) -> bytes:
    request = json.dumps({"source": source, "filename": "s.py"}).encode()
    done = subprocess.run([sys.executable, "-m", "backworks.sandbox.compiling"], input=request,
                          capture_output=True, timeout=60, check=True)
    return done.stdout


def test_a_script_comes_back_as_its_code_object_and_hook_names():
    out = run_child("def before_request(request):\n    return None\ndef helper():\n    return 1\n")
    assert out[:1] == b"C"
    code, hooks = marshal.loads(out[1:])
    assert hooks == ["before_request"] and "before_request" in code.co_names


def test_a_refused_script_comes_back_as_its_problems():
    out = run_child("import os\n")
    assert out[:1] == b"E"
    assert json.loads(out[1:])[0].startswith("s.py:1: import of 'os' is not allowed")
