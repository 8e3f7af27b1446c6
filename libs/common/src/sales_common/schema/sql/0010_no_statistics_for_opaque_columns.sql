-- No planner statistics for columns no query filters, joins or groups by their values
-- (issue #11): ANALYZE sorts a sample of each column to find its common values and
-- histogram, and for these wide values (64-hex hashes, jsonb documents) that was most of
-- autovacuum's ANALYZE of the two tables during a 1M-row load (docs/BENCHMARKS.md,
-- "Statistics"). Their uses: `event_id` is never read by the pipeline (the natural keys of
-- 0009 find stored rows), nor are `fields` and `violations` but whole; `customer_hash` is
-- compared to an erasure's few hashes (a scan either way: no index serves it). Columns the
-- dashboard or the loader select by keep their statistics.
ALTER TABLE sales ALTER COLUMN event_id SET STATISTICS 0;
ALTER TABLE sales ALTER COLUMN customer_hash SET STATISTICS 0;
ALTER TABLE rejections ALTER COLUMN event_id SET STATISTICS 0;
ALTER TABLE rejections ALTER COLUMN fields SET STATISTICS 0;
ALTER TABLE rejections ALTER COLUMN violations SET STATISTICS 0;
