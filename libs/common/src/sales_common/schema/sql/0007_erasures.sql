-- Erasure on request (docs/SECURITY.md, "Erasure"): the dashboard's POST /api/v1/erasures
-- hashes the customer id under every configured key and calls erase_customer once, in one
-- transaction. The id itself never reaches the database.

-- Hashes of erased customers. The loader anonymises a row carrying one of them when it stores
-- it: rows still in Kafka when the erasure ran land without the hash. No time, no request:
-- nothing here says who asked or when.
CREATE TABLE erased_customers (
    customer_hash char(64) PRIMARY KEY
);

-- The request log: who asked, how, what was found. Neither the id nor its hashes (either would
-- keep the link to the person the request was about).
CREATE TABLE erasures (
    erasure_id     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    requested_at   timestamptz NOT NULL DEFAULT now(),
    requested_by   text        NOT NULL,
    mode           text        NOT NULL CHECK (mode IN ('anonymise', 'delete')),
    hash_count     integer     NOT NULL,
    sales_rows     integer     NOT NULL,
    rejection_rows integer     NOT NULL
);

-- Rows removed by a delete-mode erasure. An upload still being loaded when its rows were
-- deleted is complete once every row is stored, rejected or erased; without this it would
-- wait for the deleted rows forever.
ALTER TABLE uploads ADD COLUMN erased_count integer NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION uploads_settle_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    IF NEW.status IN ('committing', 'processing')
       AND NEW.rows_total IS NOT NULL
       AND NEW.valid_count + NEW.rejected_count + NEW.erased_count >= NEW.rows_total THEN
        NEW.status := 'complete';
        NEW.completed_at := now();
    END IF;
    RETURN NEW;
END $$;

-- Anonymise (sales keep their figures, lose customer_hash and pii_key_id; rejections lose the
-- customer_id of their fields) or delete (the rows go, and every aggregate and upload counter
-- moves back by exactly what they had added). Repeating it finds nothing more.
--
-- The table lock, not row locks: the loader's uncommitted rows are invisible to a DELETE or
-- UPDATE here, and a loader statement whose snapshot predates this transaction's commit does
-- not see the new erased_customers rows either; such a row would keep its hash. SHARE ROW
-- EXCLUSIVE waits for every loader transaction that has written sales or rejections to commit
-- (their rows are then seen here, each statement of a VOLATILE function taking a new snapshot)
-- and holds back new ones until this commits (their merge then sees erased_customers). It is
-- self-exclusive, so erasures run one at a time, and leaves reads (the dashboard) alone.
-- Taken in the loader's order (sales, then rejections). With it held no loader transaction
-- holds or can take a row lock on an aggregate (it locks sales or rejections first, in the
-- same statement), so the aggregate updates below cannot deadlock with it; they still go in
-- key order like the loader's.
CREATE FUNCTION erase_customer(hashes text[], erase_mode text, requester text)
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
            UPDATE daily_product_totals t SET
                total_amount = t.total_amount - d.amount,
                quantity = t.quantity - d.quantity,
                sales_count = t.sales_count - d.n
            FROM days d WHERE (t.day, t.product) = (d.day, d.product) AND t.sales_count > d.n
        ), days_gone AS (
            DELETE FROM daily_product_totals t USING days d
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
