from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from sales_common.observability import consumer_lag_gauge, processed_counter


class ValidatorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.processed = processed_counter(registry)
        self.rows = Counter(
            "validator_rows_total",
            "Rows validated, by outcome (valid, rejected, unreadable).",
            ["outcome"],
            registry=registry,
        )
        self.native_rows = Counter(
            "validator_native_rows_total",
            "Valid rows the native rules encoded; the other rows went through the Python rules.",
            registry=registry,
        )
        self.rejections = Counter(
            "validator_rejections_total",
            "Broken rules, one per rule per rejected row.",
            ["rule"],
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "validator_batch_duration_seconds",
            "One consume-transform-produce transaction, from fetch to commit.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.aborted = Counter(
            "validator_transactions_aborted_total",
            "Transactions aborted and retried.",
            registry=registry,
        )
        self.lag = consumer_lag_gauge(registry, "validator")
