"""The Prometheus exposition (/metrics): every gunicorn worker's metrics in one scrape."""
from __future__ import annotations

import functools
import os

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder

from backworks.metrics import TALLY


def registry() -> CollectorRegistry:
    """The registry /metrics reads, with this process's batched updates written first."""
    TALLY.flush()
    return _registry()


@functools.lru_cache(maxsize=1)
def _registry() -> CollectorRegistry:
    """Every worker's files under gunicorn, this process's registry otherwise."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    aggregated = CollectorRegistry()
    multiprocess.MultiProcessCollector(aggregated)
    return aggregated


def metrics_payload(accept: str | None) -> tuple[bytes, str]:
    """Return the exposition in the format the scraper accepts (Prometheus text by default)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry()), content_type
