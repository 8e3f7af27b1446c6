-- An event id is a hex digest: compare it byte by byte. Under the database's default
-- collation, on a server not initialised in the C locale (the postgres image of compose.yaml
-- runs en_US.utf8), each primary-key search and insert compared ids by the locale's rules:
-- a tenth of the loader's PostgreSQL CPU per row with ICU en-US (bench/pg_per_row.py
-- --icu-locale en-US: 9.2 -> 8.2 us a row); nothing changes on a C server. Only equality is
-- ever asked of the column, and it is the same. Rebuilds the two primary keys; the tables
-- are not rewritten.
ALTER TABLE sales ALTER COLUMN event_id TYPE text COLLATE "C";
ALTER TABLE rejections ALTER COLUMN event_id TYPE text COLLATE "C";
