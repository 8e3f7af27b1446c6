-- Nothing reads sales by upload: an upload's figures are the counters on `uploads`, the
-- dashboard reads the aggregate tables, and the loader finds stored events by event_id. The
-- index cost the loader a tenth of PostgreSQL's CPU per row (bench/pg_per_row.py). Rejections
-- keep theirs: the dashboard pages through an upload's rejections by row number.
DROP INDEX IF EXISTS sales_upload_row;
