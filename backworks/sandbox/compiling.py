"""A child process that compiles one big script under the policy (policy.compile_script sends it here).

Reads {"source", "filename"} as JSON on stdin; writes b"C" + marshal of (code, hook names), or b"E" + the
JSON list of the policy's refusals. The parent kills it past rules.COMPILE_TIMEOUT_S.
"""
from __future__ import annotations

import json
import marshal
import sys

from backworks.sandbox.policy import ScriptError, compiled


def main() -> None:
    """Compile the script read from stdin and write the result to stdout."""
    request = json.loads(sys.stdin.buffer.read())
    try:
        code, hooks = compiled(request["source"], request["filename"])
    except ScriptError as exc:
        sys.stdout.buffer.write(b"E" + json.dumps(exc.problems).encode())
        return
    sys.stdout.buffer.write(b"C" + marshal.dumps((code, sorted(hooks))))


if __name__ == "__main__":
    main()
