from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from sales_common.observability import consumer_lag_gauge, processed_counter


class LoaderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.processed = processed_counter(registry)
        self.rows = Counter(
            "loader_rows_total",
            "Rows consumed, by table and outcome (inserted, or duplicate skipped).",
            ["table", "outcome"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "loader_batch_duration_seconds",
            "One database transaction for one batch.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.batch_rows = Histogram(
            "loader_batch_rows",
            "Records per batch.",
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000),
            registry=registry,
        )
        self.retries = Counter(
            "loader_batch_retries_total",
            "Batches retried after a transient failure.",
            registry=registry,
        )
        self.deltas_folded = Counter(
            "loader_daily_deltas_folded_total",
            "Per-day total deltas this loader folded into daily_product_folded.",
            registry=registry,
        )
        self.lag = consumer_lag_gauge(registry, "loader")
