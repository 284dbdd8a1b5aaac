-- One row per (tenant, minute) holding the names counted in that minute, rather than one per
-- (tenant, minute, name): a dozen events of a name in a minute cost about 190 bytes of row and
-- index headers that way, more than the events themselves. The arrays are sorted by name; a
-- NULL sketch is a count made before sketches were kept. A row holds at most 64 names (the
-- store's MINUTE_ROW_NAMES), so that a batch never rewrites an unbounded row; a minute's
-- further names are counted a row each in analytics_minute_names, as before. Readers keep the
-- old shape through the views.
CREATE TABLE analytics_minute_rows (
    tenant_id UUID     NOT NULL,
    minute    BIGINT   NOT NULL,
    names     TEXT[]   NOT NULL,
    counts    BIGINT[] NOT NULL,
    users     BYTEA[]  NOT NULL,
    PRIMARY KEY (tenant_id, minute)
);
ALTER TABLE analytics_minutes RENAME TO analytics_minute_names;
ALTER TABLE analytics_minute_names RENAME CONSTRAINT analytics_minutes_pkey TO analytics_minute_names_pkey;
WITH ranked AS (
    SELECT tenant_id, minute, name, count, users,
           row_number() OVER (PARTITION BY tenant_id, minute ORDER BY name) AS k
    FROM analytics_minute_names
), moved AS (
    INSERT INTO analytics_minute_rows (tenant_id, minute, names, counts, users)
    SELECT tenant_id, minute, array_agg(name ORDER BY name), array_agg(count ORDER BY name),
           array_agg(users ORDER BY name)
    FROM ranked WHERE k <= 64 GROUP BY tenant_id, minute
    RETURNING tenant_id, minute, names
)
DELETE FROM analytics_minute_names n USING moved m
    WHERE n.tenant_id = m.tenant_id AND n.minute = m.minute AND n.name = ANY(m.names);
CREATE VIEW analytics_minutes AS
    SELECT m.tenant_id, m.minute, x.name, x.count, x.users
    FROM analytics_minute_rows m
    CROSS JOIN LATERAL unnest(m.names, m.counts, m.users) AS x(name, count, users)
    UNION ALL
    SELECT tenant_id, minute, name, count, users FROM analytics_minute_names;
-- The same without the sketches, for counts.
CREATE VIEW analytics_minute_counts AS
    SELECT m.tenant_id, m.minute, x.name, x.count
    FROM analytics_minute_rows m
    CROSS JOIN LATERAL unnest(m.names, m.counts) AS x(name, count)
    UNION ALL
    SELECT tenant_id, minute, name, count FROM analytics_minute_names;
