-- An ingest instance renews the lease of every upload it is receiving or publishing. An
-- upload whose lease ran out belongs to an instance that died: any instance's janitor
-- fences its Kafka transaction and marks it failed (FOR UPDATE SKIP LOCKED: one janitor
-- per upload, however many replicas run one).
ALTER TABLE uploads ADD COLUMN lease_until timestamptz NOT NULL DEFAULT now();
CREATE INDEX uploads_unsettled ON uploads (lease_until)
    WHERE status IN ('receiving', 'committing');
