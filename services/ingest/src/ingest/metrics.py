from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.uploads = Counter(
            "ingest_uploads_total",
            "Uploads by outcome (accepted, duplicate, replayed, refused, failed, superseded).",
            ["outcome"],
            registry=registry,
        )
        self.rows = Counter(
            "ingest_rows_total",
            "Rows published to sales.raw in committed uploads.",
            registry=registry,
        )
        self.bytes = Counter(
            "ingest_bytes_total", "Bytes of CSV read from clients.", registry=registry
        )
        self.producers = Counter(
            "ingest_producers_total",
            "Producers uploads published with: ready (started ahead) or started (on the"
            " request's path: none was ready, a retry, or a spool too big for a ready one).",
            ["source"],
            registry=registry,
        )
        self.ready_producers = Gauge(
            "ingest_ready_producers",
            "Producers started ahead, waiting for a new upload.",
            registry=registry,
        )
        self.upload_seconds = Histogram(
            "ingest_upload_duration_seconds",
            "From the first byte read to the Kafka commit.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=registry,
        )
