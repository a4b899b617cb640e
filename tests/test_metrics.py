"""/metrics: Prometheus text, aggregated across gunicorn workers through the multiprocess directory."""
from __future__ import annotations

import json
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from prometheus_client.mmap_dict import MmapedDict

from backworks.app import create_app
from backworks.metrics import Tally
from tests.helpers.basics import write_config
from tests.helpers.ops import GUNICORN_CONF, sample

CONFIG = """
    name: metrics-test
    server: {access_log: false, watch: false}
    endpoints:
      hello: {path: /hello, mock: {json: {ok: true}}}
      slow: {path: /slow, mock: {json: {ok: true}, delay_ms: 300}}
      down: {path: /down, mock: {status: 503, json: {down: true}}}
"""
FAILING = "def before_request(request):\n    raise ValueError('always')\n"


def scrape(server) -> str:
    """/metrics once every worker has written its batched updates (each does within Tally.FLUSH_S)."""
    time.sleep(Tally.FLUSH_S + 0.5)
    return requests.get(server.url + "/metrics", timeout=10).text


def per_worker_counts(directory: Path, endpoint: str) -> dict:
    """{pid: requests counted for `endpoint`} read from each worker's own counter file."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
            metric, name, labels, _help = json.loads(key)
            if name == "backworks_requests_total" and labels.get("endpoint") == endpoint:
                counts[pid] = counts.get(pid, 0) + value
    return counts


def test_metrics_add_up_across_two_gunicorn_workers(tmp_path, gunicorn):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale file from a previous run")
    server = gunicorn(write_config(tmp_path, CONFIG), workers=2, extra=GUNICORN_CONF,
                      env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    assert not (metrics_dir / "counter_999999.db").exists()
    with ThreadPoolExecutor(4) as pool:  # four 300 ms requests at once: both sync workers must serve
        slow = list(pool.map(lambda _: requests.get(server.url + "/slow", timeout=10).status_code, range(8)))
    hello = [requests.get(server.url + "/hello", timeout=10).status_code for _ in range(12)]
    down = [requests.get(server.url + "/down", timeout=10).status_code for _ in range(3)]
    assert slow == [200] * 8 and hello == [200] * 12 and down == [503] * 3

    text = scrape(server)
    assert sample(text, "backworks_requests_total", endpoint="slow", mode="mock", status="200") == 8
    assert sample(text, "backworks_requests_total", endpoint="hello", mode="mock", status="200") == 12
    assert sample(text, "backworks_requests_total", endpoint="down", mode="mock", status="503") == 3
    assert sample(text, "backworks_request_duration_seconds_count", endpoint="slow") == 8
    assert sample(text, "backworks_request_duration_seconds_bucket", endpoint="slow", le="0.25") == 0
    assert sample(text, "backworks_request_duration_seconds_bucket", endpoint="slow", le="+Inf") == 8
    workers = per_worker_counts(metrics_dir, "slow")
    assert len([pid for pid, n in workers.items() if n]) == 2, workers
    assert sum(workers.values()) == 8


def test_metrics_content_type_is_prometheus_text(tmp_path, gunicorn):
    server = gunicorn(write_config(tmp_path, CONFIG), workers=1, extra=GUNICORN_CONF)
    resp = requests.get(server.url + "/metrics", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")


def test_gunicorn_config_creates_and_removes_its_own_metrics_dir(tmp_path, gunicorn):
    server = gunicorn(write_config(tmp_path, CONFIG), workers=1, extra=GUNICORN_CONF,
                      env={"PROMETHEUS_MULTIPROC_DIR": ""})
    parent = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    directory = parent / f"backworks-metrics-{server.proc.pid}"
    assert requests.get(server.url + "/hello", timeout=10).status_code == 200
    assert directory.is_dir() and list(directory.glob("counter_*.db"))
    server.stop()
    assert not directory.exists()


def test_metrics_without_gunicorn_count_this_process(tmp_path):
    client = create_app(write_config(tmp_path, """
        server: {access_log: false}
        endpoints:
          ping: {path: /ping, mock: {json: {ok: true}}}
    """)).test_client()
    before = sample(client.get("/metrics").text, "backworks_requests_total", endpoint="ping", status="200")
    client.get("/ping")
    client.get("/ping")
    after = sample(client.get("/metrics").text, "backworks_requests_total", endpoint="ping", status="200")
    assert after - before == 2
    unmatched = sample(client.get("/metrics").text, "backworks_requests_total", endpoint="-", mode="-", status="404")
    client.get("/no-such-path")
    assert sample(client.get("/metrics").text, "backworks_requests_total", endpoint="-", status="404") == unmatched + 1


def test_plugin_failures_are_counted_by_kind_across_workers(tmp_path, gunicorn):
    (tmp_path / "failing.py").write_text(FAILING)
    config = write_config(tmp_path, CONFIG + """
    plugins:
      failing:
        script: failing.py
        endpoints: [hello]
        circuit_breaker: {failure_threshold: 1000}
    """)
    server = gunicorn(config, workers=2, extra=GUNICORN_CONF, env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "m")})
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: requests.get(server.url + "/hello", timeout=10).status_code, range(12)))
    assert statuses == [200] * 12  # fail-open: the request goes on without the plugin
    text = scrape(server)
    assert sample(text, "backworks_plugin_calls_total", plugin="failing", hook="before_request", kind="error") == 12
    assert sample(text, "backworks_plugin_breaker_open", plugin="failing") == 0


def test_breaker_gauge_of_a_replaced_worker_does_not_stick(tmp_path, gunicorn):
    (tmp_path / "failing.py").write_text(FAILING)
    config = write_config(tmp_path, CONFIG + """
    plugins:
      failing:
        script: failing.py
        endpoints: [hello]
        circuit_breaker: {failure_threshold: 1, recovery_s: 600}
    """)
    server = gunicorn(config, workers=1, extra=GUNICORN_CONF, env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "m")})
    assert requests.get(server.url + "/hello", timeout=10).status_code == 200
    text = requests.get(server.url + "/metrics", timeout=10).text
    assert sample(text, "backworks_plugin_breaker_open", plugin="failing") == 1
    old_pid = requests.get(server.url + "/healthz", timeout=10).json()["pid"]
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 15
    while Path(f"/proc/{old_pid}").exists():  # replaced, exited and reaped by the master
        assert time.monotonic() < deadline, "the worker was not replaced"
        time.sleep(0.1)
    text = requests.get(server.url + "/metrics", timeout=10).text
    assert sample(text, "backworks_plugin_breaker_open", plugin="failing") == 0
    assert sample(text, "backworks_requests_total", endpoint="hello", status="200") == 1  # counters survive


def test_tally_buckets_like_prometheus_and_writes_in_the_background():
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.utils import floatToGoString

    from backworks.metrics import LATENCY_BUCKETS, TALLY

    registry = CollectorRegistry()
    counter = Counter("tally_test_total", "test", registry=registry)
    batched = Histogram("tally_batched_seconds", "test", buckets=LATENCY_BUCKETS, registry=registry)
    direct = Histogram("tally_direct_seconds", "test", buckets=LATENCY_BUCKETS, registry=registry)
    values = [0.0001, 0.0005, 0.001, 0.003, 0.01, 0.7, 2.5, 11.0, 0.0]
    for value in values:
        TALLY.count_and_time(counter, batched, value)
        direct.observe(value)
    assert registry.get_sample_value("tally_test_total") == 0  # summed in memory, not written yet
    deadline = time.monotonic() + Tally.FLUSH_S * 3
    while registry.get_sample_value("tally_test_total") != len(values):  # the flusher thread writes it
        assert time.monotonic() < deadline, "the tally was not written within its flush interval"
        time.sleep(0.05)
    for bound in [*map(floatToGoString, LATENCY_BUCKETS), "+Inf"]:
        expected = registry.get_sample_value("tally_direct_seconds_bucket", {"le": bound})
        assert expected is not None and registry.get_sample_value("tally_batched_seconds_bucket", {"le": bound}) == \
            expected, bound
    assert abs(registry.get_sample_value("tally_batched_seconds_sum") - sum(values)) < 1e-9
