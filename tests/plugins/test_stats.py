"""Per-plugin counters: what the admin API shows and what reaches Prometheus."""
from __future__ import annotations

from prometheus_client import REGISTRY

from backworks.plugins.stats import PluginStats


def test_counts_failures_and_percentiles_before_and_after_a_flush():
    stats = PluginStats("stats-test")
    for duration in (1.0, 2.0, 3.0, 4.0):
        stats.record("before_request", "ok", duration)
    stats.record("before_request", "timeout", 100.0)
    stats.record("after_response", "error", 0.5)
    expected = {"calls": 6, "calls_by_hook": {"before_request": 5, "after_response": 1},
                "failures": {"timeout": 1, "error": 1}}
    first = stats.snapshot()
    assert {key: first[key] for key in expected} == expected
    assert first["latency_ms"] == {"p50": 2.0, "p95": 100.0, "p99": 100.0}

    stats.flush()
    again = stats.snapshot()  # flushed calls still count
    assert {key: again[key] for key in expected} == expected
    labels = {"plugin": "stats-test", "hook": "before_request"}
    assert REGISTRY.get_sample_value("backworks_plugin_calls_total", {**labels, "kind": "ok"}) == 4
    assert REGISTRY.get_sample_value("backworks_plugin_calls_total", {**labels, "kind": "timeout"}) == 1
    assert REGISTRY.get_sample_value("backworks_plugin_duration_seconds_count", labels) == 5
    assert abs(REGISTRY.get_sample_value("backworks_plugin_duration_seconds_sum", labels) - 0.110) < 1e-9
    assert REGISTRY.get_sample_value("backworks_plugin_duration_seconds_bucket", {**labels, "le": "0.001"}) == 1
    assert REGISTRY.get_sample_value("backworks_plugin_duration_seconds_bucket", {**labels, "le": "0.005"}) == 4

    stats.record("before_request", "ok", 1.0)
    stats.flush()
    assert REGISTRY.get_sample_value("backworks_plugin_calls_total", {**labels, "kind": "ok"}) == 5
    assert stats.snapshot()["calls"] == 7


def test_ok_calls_appended_to_the_ok_list_count_as_recorded_ones_do():
    appended, recorded = PluginStats("stats-ok-list"), PluginStats("stats-ok-record")
    durations = appended.ok_list("before_request")
    for duration in (1.0, 2.0, 3.0, 4.0, 7.5):
        durations.append(duration)
        appended.record_ok(durations)
        recorded.record("before_request", "ok", duration)
    appended.record("before_request", "timeout", 100.0)
    recorded.record("before_request", "timeout", 100.0)
    assert appended.snapshot() == recorded.snapshot()
    appended.flush()
    recorded.flush()
    for name in ("stats-ok-list", "stats-ok-record"):
        labels = {"plugin": name, "hook": "before_request"}
        assert REGISTRY.get_sample_value("backworks_plugin_calls_total", {**labels, "kind": "ok"}) == 5
        assert REGISTRY.get_sample_value("backworks_plugin_duration_seconds_bucket", {**labels, "le": "0.005"}) == 4


def test_the_ok_list_is_folded_at_the_window_and_loses_nothing_appended_while_folding():
    import threading

    stats = PluginStats("stats-ok-window", window=50)
    durations = stats.ok_list("before_request")

    def append(count):
        for _ in range(count):
            durations.append(1.0)
            stats.record_ok(durations)

    threads = [threading.Thread(target=append, args=(5000,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(200):
        stats.snapshot()  # folds concurrently with the appends
    for thread in threads:
        thread.join()
    assert len(durations) < 50  # never more than a window waits
    assert stats.snapshot()["calls"] == 20000
