"""Record real exchanges into a capture store, for the HAR and mocks-from-capture tests."""
from __future__ import annotations

import time

from backworks.app import create_app
from backworks.capture.store import CaptureStore
from backworks.config.load import load_config
from tests.helpers.basics import write_config
from tests.helpers.fake_upstream import FakeUpstream

CAPTURE = """
server: {{watch: false, access_log: false}}
capture: {{store: "sqlite:///{store}"}}
upstreams:
  api: {{targets: [{{url: "{url}"}}]}}
endpoints:
  api:
    path: /api/{{rest:path}}
    mode: capture
    capture: {{upstream: api, strip_prefix: /api}}
"""


def record(folder, requests_to_make, store: str = "captures.db", name: str = "capture.yaml"):
    """Capture `requests_to_make` [(method, path, kwargs)] through a real upstream; return the config path."""
    upstream = FakeUpstream("real")
    path = write_config(folder, CAPTURE.format(url=upstream.url, store=store), name=name)
    app = create_app(path)
    try:
        client = app.test_client()
        for method, url, kwargs in requests_to_make:
            assert client.open(url, method=method, **kwargs).status_code < 500
        reader = CaptureStore.from_config(load_config(path))
        deadline = time.monotonic() + 5
        while len(reader.rows()) < len(requests_to_make) and time.monotonic() < deadline:
            time.sleep(0.05)
        reader.close()
    finally:
        app.extensions["backworks"].runtime.close()
        upstream.stop()
    return path
