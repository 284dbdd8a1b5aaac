-- A tenant's analytics events, partitioned by month of their timestamp (the store makes the
-- partitions ahead of time; rows outside them land in the default partition until one is
-- made). The tenant leads every key.
CREATE SEQUENCE analytics_event_ids;
CREATE TABLE analytics_events (
    tenant_id   UUID   NOT NULL,
    ts          BIGINT NOT NULL,
    id          BIGINT NOT NULL DEFAULT nextval('analytics_event_ids'),
    name        TEXT   NOT NULL,
    distinct_id TEXT,
    session_id  TEXT,
    properties  JSONB  NOT NULL,
    PRIMARY KEY (tenant_id, ts, id)
) PARTITION BY RANGE (ts);
CREATE TABLE analytics_events_default PARTITION OF analytics_events DEFAULT;
CREATE INDEX analytics_events_by_name ON analytics_events (tenant_id, name, ts, id);

-- Events per (tenant, minute, name), written with the events: counts over a window are sums.
CREATE TABLE analytics_minutes (
    tenant_id UUID   NOT NULL,
    minute    BIGINT NOT NULL,
    name      TEXT   NOT NULL,
    count     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, minute, name)
);

-- Idempotency keys of batches, with the answer a retry gets again.
CREATE TABLE analytics_batches (
    tenant_id  UUID   NOT NULL,
    key        TEXT   NOT NULL,
    answer     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX analytics_batches_by_age ON analytics_batches (created_at);
