-- Sales per day and product, kept by the loader in the same transaction as the rows: the
-- dashboard answers any range of days from it without reading `sales`. It replaces
-- daily_totals (a day's total is the sum of its products). product_totals stays as the
-- all-time roll-up: the default view then costs one row per product however long the
-- history is, where summing this table costs one row per product and day.
--
-- A sale's day is its own date, or the day it was validated (UTC) when the row had none,
-- as daily_totals had it, but now in UTC whatever the session's time zone.
--
-- Writers of the previous release wait here, then fail on the dropped table and retry after
-- the upgrade: nothing they commit can fall between the backfill and the drop.
LOCK TABLE sales, daily_totals IN EXCLUSIVE MODE;

CREATE TABLE daily_product_totals (
    day          date           NOT NULL,
    product      text           NOT NULL,
    total_amount numeric(20, 2) NOT NULL,
    quantity     bigint         NOT NULL,
    sales_count  bigint         NOT NULL,
    PRIMARY KEY (day, product)
);

-- From the rows themselves, not daily_totals, which has no product (and took the day of an
-- undated sale in the session's time zone).
INSERT INTO daily_product_totals (day, product, total_amount, quantity, sales_count)
SELECT coalesce(sale_date, (validated_at AT TIME ZONE 'UTC')::date), product,
       sum(amount), sum(quantity), count(*)
FROM sales
GROUP BY 1, 2;

DROP TABLE daily_totals;

-- The dashboard of the previous release reads daily_totals until its pods are replaced;
-- nothing writes here (a view with GROUP BY refuses inserts). Drop it in a later release.
CREATE VIEW daily_totals AS
SELECT day, sum(total_amount)::numeric(20, 2) AS total_amount, sum(sales_count)::bigint AS sales_count
FROM daily_product_totals
GROUP BY day;

-- Recent uploads are paged by (created_at, upload_id): the id breaks ties between uploads
-- received in the same microsecond, so a page boundary never skips or repeats one.
DROP INDEX uploads_recent;
CREATE INDEX uploads_recent ON uploads (created_at DESC, upload_id DESC);
