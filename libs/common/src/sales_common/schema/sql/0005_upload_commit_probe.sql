-- One record of an attempt's Kafka transaction (topic/partition/offset), written just before
-- ingest commits it. The janitor, finding an upload left 'committing' by a dead instance,
-- fences its transaction and reads this offset read_committed: visible means the commit
-- happened (the upload goes on to 'processing'), skipped means it was aborted ('failed').
ALTER TABLE uploads ADD COLUMN commit_probe text;
