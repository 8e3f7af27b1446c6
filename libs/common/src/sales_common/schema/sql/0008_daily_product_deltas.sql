-- Sales per day and product as appends, folded later (issue #11). Moving the per-day totals
-- in every loader batch cost a fifth to a third of PostgreSQL's CPU per row: a batch of 2,000
-- sales touches ~1,200 (day, product) rows, each an ON CONFLICT upsert with its row lock,
-- new row version and index entry, and a second loader waited for the first one's commit on
-- the same rows (docs/BENCHMARKS.md, "Per-day totals as appends"). Now a batch appends its
-- sums to `daily_product_deltas` (no index, no conflict, no row lock) in the transaction of
-- its rows, and `fold_daily_product_deltas()`, which every loader calls about once a second,
-- moves them into `daily_product_folded`: one upsert per (day, product) for all the batches
-- since the last fold.
--
-- Readers keep the name `daily_product_totals`: a view adding the deltas to the folded rows,
-- so a total is always what its rows add up to, folded or not. Filtering it by day reaches
-- both tables (the folded one through its primary key; the deltas are a second or so of
-- appends).
--
-- Loaders of the previous release fail on the view (it refuses inserts): their lane stops,
-- /healthz turns 503 and the pod restarts, its partitions waiting (nothing lost) until the
-- new release's pods take over; upgrade the loaders with the migration. Dashboards of the
-- previous release read the view as they read the table.
LOCK TABLE daily_product_totals IN ACCESS EXCLUSIVE MODE;

ALTER TABLE daily_product_totals RENAME TO daily_product_folded;
ALTER INDEX daily_product_totals_pkey RENAME TO daily_product_folded_pkey;

CREATE TABLE daily_product_deltas (
    day          date           NOT NULL,
    product      text           NOT NULL,
    total_amount numeric(20, 2) NOT NULL,
    quantity     bigint         NOT NULL,
    sales_count  bigint         NOT NULL
);
-- The loaders vacuum it after each fold (loader/repository.py); autovacuum, by row count
-- rather than a share of a table that is empty after every fold, is the backstop.
ALTER TABLE daily_product_deltas SET (
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000
);

CREATE VIEW daily_product_totals AS
SELECT day, product, sum(total_amount)::numeric(20, 2) AS total_amount,
       sum(quantity)::bigint AS quantity, sum(sales_count)::bigint AS sales_count
FROM (
    SELECT day, product, total_amount, quantity, sales_count FROM daily_product_folded
    UNION ALL
    SELECT day, product, total_amount, quantity, sales_count FROM daily_product_deltas
) AS t
GROUP BY day, product;

-- 0006's compatibility view read the renamed table: it reads the new view instead.
CREATE OR REPLACE VIEW daily_totals AS
SELECT day, sum(total_amount)::numeric(20, 2) AS total_amount, sum(sales_count)::bigint AS sales_count
FROM daily_product_totals
GROUP BY day;

-- Moves every committed delta into daily_product_folded; the number of deltas moved. One
-- fold at a time (a transaction-level advisory lock): `wait` false returns 0 at once when
-- another fold runs (the loaders' timer), true waits for it (an erasure). The deltas are
-- deleted row by row, not truncated: TRUNCATE cost half the CPU but needs the table's
-- exclusive lock, which held back every loader batch and reader of the view behind the batch
-- in flight (a 6-row upload during five 100k-row ones: p99 754 and 1,051 ms against 621 and
-- 524 ms without deltas), and a new file each second invalidated every session's cached plans.
-- A batch committing meanwhile keeps its deltas for the next fold. Upserts go in key order
-- like every other writer of the folded rows.
CREATE FUNCTION fold_daily_product_deltas(wait boolean DEFAULT false) RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    moved integer;
BEGIN
    IF wait THEN
        PERFORM pg_advisory_xact_lock(8406117203);
    ELSIF NOT pg_try_advisory_xact_lock(8406117203) THEN
        RETURN 0;
    END IF;
    WITH gone AS (
        DELETE FROM daily_product_deltas
        RETURNING day, product, total_amount, quantity, sales_count
    ), sums AS (
        SELECT day, product, sum(total_amount) AS total_amount, sum(quantity) AS quantity,
               sum(sales_count) AS sales_count, count(*) AS deltas
        FROM gone GROUP BY day, product
    ), folded AS (
        INSERT INTO daily_product_folded AS t (day, product, total_amount, quantity, sales_count)
        SELECT day, product, total_amount, quantity, sales_count FROM sums ORDER BY day, product
        ON CONFLICT (day, product) DO UPDATE SET
            total_amount = t.total_amount + excluded.total_amount,
            quantity = t.quantity + excluded.quantity,
            sales_count = t.sales_count + excluded.sales_count
    )
    SELECT coalesce(sum(deltas), 0)::integer INTO moved FROM sums;
    RETURN moved;
END $$;

-- erase_customer of 0007 with the per-day totals folded first: it holds the table lock that
-- waits for every loader transaction with rows of the customer, so every delta of those rows
-- is committed and folded before their sums are taken out of daily_product_folded (a fold
-- running in a loader meanwhile is waited for). The rest is 0007's.
CREATE OR REPLACE FUNCTION erase_customer(hashes text[], erase_mode text, requester text)
RETURNS TABLE (erasure_id uuid, requested_at timestamptz, sales_rows integer, rejection_rows integer)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    n_sales integer;
    n_rejections integer;
BEGIN
    IF erase_mode IS NULL OR erase_mode NOT IN ('anonymise', 'delete') THEN
        RAISE EXCEPTION 'unknown erasure mode %', erase_mode USING ERRCODE = 'invalid_parameter_value';
    END IF;
    LOCK TABLE sales, rejections IN SHARE ROW EXCLUSIVE MODE;
    PERFORM fold_daily_product_deltas(true);

    INSERT INTO erased_customers (customer_hash)
    SELECT DISTINCT h FROM unnest(hashes) AS h ORDER BY 1
    ON CONFLICT DO NOTHING;

    IF erase_mode = 'anonymise' THEN
        UPDATE sales SET customer_hash = NULL, pii_key_id = NULL
        WHERE customer_hash = ANY (hashes::bpchar[]);
        GET DIAGNOSTICS n_sales = ROW_COUNT;

        UPDATE rejections SET fields = fields - 'customer_id', pii_key_id = NULL
        WHERE fields ->> 'customer_id' = ANY (hashes);
        GET DIAGNOSTICS n_rejections = ROW_COUNT;
    ELSE
        -- A total that reaches zero goes, as if the loader had never made it: the aggregates
        -- stay equal to sums over the rows.
        WITH gone AS (
            DELETE FROM sales WHERE customer_hash = ANY (hashes::bpchar[])
            RETURNING upload_id, product, quantity, amount,
                coalesce(sale_date, (validated_at AT TIME ZONE 'UTC')::date) AS day
        ), products AS (
            SELECT product, sum(amount) AS amount, sum(quantity) AS quantity, count(*) AS n
            FROM gone GROUP BY product ORDER BY product
        ), products_less AS (
            UPDATE product_totals t SET
                total_amount = t.total_amount - p.amount,
                quantity = t.quantity - p.quantity,
                sales_count = t.sales_count - p.n
            FROM products p WHERE t.product = p.product AND t.sales_count > p.n
        ), products_gone AS (
            DELETE FROM product_totals t USING products p
            WHERE t.product = p.product AND t.sales_count <= p.n
        ), days AS (
            SELECT day, product, sum(amount) AS amount, sum(quantity) AS quantity, count(*) AS n
            FROM gone GROUP BY day, product ORDER BY day, product
        ), days_less AS (
            UPDATE daily_product_folded t SET
                total_amount = t.total_amount - d.amount,
                quantity = t.quantity - d.quantity,
                sales_count = t.sales_count - d.n
            FROM days d WHERE (t.day, t.product) = (d.day, d.product) AND t.sales_count > d.n
        ), days_gone AS (
            DELETE FROM daily_product_folded t USING days d
            WHERE (t.day, t.product) = (d.day, d.product) AND t.sales_count <= d.n
        ), per_upload AS (
            SELECT upload_id, count(*) AS n, sum(amount) AS amount
            FROM gone GROUP BY upload_id ORDER BY upload_id
        ), counted AS (
            UPDATE uploads u SET
                valid_count = u.valid_count - p.n,
                valid_amount = u.valid_amount - p.amount,
                erased_count = u.erased_count + p.n
            FROM per_upload p WHERE u.upload_id = p.upload_id
        )
        SELECT count(*) INTO n_sales FROM gone;

        WITH gone AS (
            DELETE FROM rejections WHERE fields ->> 'customer_id' = ANY (hashes)
            RETURNING upload_id, violations
        ), rules AS (
            SELECT v ->> 'rule' AS rule, count(*) AS n
            FROM gone, jsonb_array_elements(gone.violations) AS v GROUP BY 1 ORDER BY 1
        ), rules_less AS (
            UPDATE rejection_rule_counts t SET count = t.count - r.n
            FROM rules r WHERE t.rule = r.rule AND t.count > r.n
        ), rules_gone AS (
            DELETE FROM rejection_rule_counts t USING rules r
            WHERE t.rule = r.rule AND t.count <= r.n
        ), totals AS (
            UPDATE rejection_totals SET rejected_rows = rejected_rows - (SELECT count(*) FROM gone)
            WHERE EXISTS (SELECT FROM gone)
        ), per_upload AS (
            SELECT upload_id, count(*) AS n
            FROM gone WHERE upload_id IS NOT NULL GROUP BY upload_id ORDER BY upload_id
        ), counted AS (
            UPDATE uploads u SET
                rejected_count = u.rejected_count - p.n,
                erased_count = u.erased_count + p.n
            FROM per_upload p WHERE u.upload_id = p.upload_id
        )
        SELECT count(*) INTO n_rejections FROM gone;
    END IF;

    INSERT INTO erasures AS e (requested_by, mode, hash_count, sales_rows, rejection_rows)
    VALUES (requester, erase_mode, cardinality(hashes), n_sales, n_rejections)
    RETURNING e.erasure_id, e.requested_at INTO erasure_id, requested_at;
    sales_rows := n_sales;
    rejection_rows := n_rejections;
    RETURN NEXT;
END $$;
