-- Uploads, stored rows, rejections, aggregates and consumer offsets.
-- Raw customer ids never reach this database: only their keyed hash does.

CREATE TABLE uploads (
    upload_id       uuid PRIMARY KEY,
    filename        text        NOT NULL,
    content_sha256  text,
    idempotency_key text UNIQUE,
    reload          boolean     NOT NULL DEFAULT false,
    status          text        NOT NULL
        CHECK (status IN ('receiving', 'committing', 'processing', 'complete', 'failed')),
    attempt         integer     NOT NULL DEFAULT 1,
    rows_total      integer,
    valid_count     integer     NOT NULL DEFAULT 0,
    rejected_count  integer     NOT NULL DEFAULT 0,
    valid_amount    numeric(20, 2) NOT NULL DEFAULT 0,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz
);

-- One live upload per content: re-sending a file is answered with the first upload,
-- unless an admin asks for a deliberate re-load. Failed uploads release their claim.
CREATE UNIQUE INDEX uploads_content_once ON uploads (content_sha256)
    WHERE NOT reload AND status <> 'failed';
CREATE INDEX uploads_recent ON uploads (created_at DESC);

-- The single rule for "complete": every row of the upload is accounted for.
CREATE FUNCTION uploads_settle_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    IF NEW.status IN ('committing', 'processing')
       AND NEW.rows_total IS NOT NULL
       AND NEW.valid_count + NEW.rejected_count >= NEW.rows_total THEN
        NEW.status := 'complete';
        NEW.completed_at := now();
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER uploads_settle_status BEFORE UPDATE ON uploads
    FOR EACH ROW EXECUTE FUNCTION uploads_settle_status();

CREATE TABLE sales (
    event_id       text PRIMARY KEY,
    upload_id      uuid           NOT NULL,
    row_number     integer        NOT NULL,
    transaction_id text,
    product        text           NOT NULL,
    price          numeric(12, 2) NOT NULL,
    quantity       integer        NOT NULL,
    amount         numeric(14, 2) NOT NULL,
    customer_hash  char(64),
    pii_key_id     text,
    sale_date      date,
    validated_at   timestamptz    NOT NULL,
    loaded_at      timestamptz    NOT NULL DEFAULT now()
);
CREATE INDEX sales_upload_row ON sales (upload_id, row_number);

CREATE TABLE rejections (
    event_id    text PRIMARY KEY,
    upload_id   uuid,
    row_number  integer,
    fields      jsonb       NOT NULL,
    violations  jsonb       NOT NULL,
    pii_key_id  text,
    source      text,
    rejected_at timestamptz NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rejections_upload_row ON rejections (upload_id, row_number);

-- Aggregates kept current by the loader in the same transaction as the rows, so the
-- dashboard never scans the sales table.
CREATE TABLE product_totals (
    product      text PRIMARY KEY,
    total_amount numeric(20, 2) NOT NULL,
    quantity     bigint NOT NULL,
    sales_count  bigint NOT NULL
);

CREATE TABLE daily_totals (
    day          date PRIMARY KEY,
    total_amount numeric(20, 2) NOT NULL,
    sales_count  bigint NOT NULL
);

CREATE TABLE rejection_totals (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    rejected_rows bigint  NOT NULL
);

CREATE TABLE rejection_rule_counts (
    rule  text PRIMARY KEY,
    count bigint NOT NULL
);

-- The loader's Kafka positions, committed with the rows they produced.
CREATE TABLE consumer_offsets (
    group_id    text    NOT NULL,
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
