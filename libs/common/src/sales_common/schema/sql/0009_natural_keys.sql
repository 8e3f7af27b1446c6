-- Stored rows are found by the keys their event_id is a hash of (events.event_id_for), not by
-- the hash (issue #11). A sale's event_id hashes its business transaction_id when it has one,
-- else its upload and row number; a rejected row's hashes its upload and row number; an
-- unreadable record's, its place in Kafka (`source`). Each key is unique exactly when the
-- event_id is, so replays still conflict and a transaction_id reused by another row is still
-- found (loader/repository.py). The difference is where an insert lands: a random 32-hex id
-- put each row on a random leaf of an index as large as the table, the dearest part of the
-- loader's PostgreSQL work (two fifths of its backend CPU in a profile of the pipeline); an
-- upload's row numbers grow, and so do a till's transaction ids, so their inserts land next
-- to the previous one (docs/BENCHMARKS.md, "Natural keys"). Random transaction ids cost about
-- what the event_id key cost.
--
-- Loaders of the previous release merge with ON CONFLICT (event_id), which no index serves
-- now: their batch fails when it holds a stored event, the lane stops, /healthz turns 503 and
-- the pod restarts (nothing lost) until the new release's pods take over. Upgrade the loaders
-- with the migration.
ALTER TABLE sales DROP CONSTRAINT sales_pkey;
-- Only equality is asked of transaction_id: compared byte by byte, as event_id was (0004).
ALTER TABLE sales ALTER COLUMN transaction_id TYPE text COLLATE "C";
-- A B-tree entry holds at most 2,704 bytes and ingest lets a field have 4,096 characters: a
-- longer transaction id (an unlikely one, which this must still store) is kept unique by its
-- event_id, the hash of it. 1024 is also the loader's _LONG_TRANSACTION_ID.
CREATE UNIQUE INDEX sales_transaction_once ON sales (transaction_id)
    WHERE octet_length(transaction_id) <= 1024;
CREATE UNIQUE INDEX sales_long_transaction_once ON sales (event_id)
    WHERE octet_length(transaction_id) > 1024;
CREATE UNIQUE INDEX sales_row_once ON sales (upload_id, row_number)
    WHERE transaction_id IS NULL;

-- A rejection of a row has its upload and row number; an unreadable record neither (it has
-- its source). A record with only one of them (no producer of ours writes one) is kept
-- unique by its event_id, so no row of sales.rejected is refused by a constraint here. The
-- first index also serves the dashboard's paging through an upload's rejections.
ALTER TABLE rejections DROP CONSTRAINT rejections_pkey;
DROP INDEX rejections_upload_row;
CREATE UNIQUE INDEX rejections_row_once ON rejections (upload_id, row_number)
    WHERE upload_id IS NOT NULL;
CREATE UNIQUE INDEX rejections_source_once ON rejections (event_id)
    WHERE upload_id IS NULL OR row_number IS NULL;
