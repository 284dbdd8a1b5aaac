-- A tenant's analytics events. The tenant leads every key.
CREATE TABLE analytics_events (
    id          INTEGER PRIMARY KEY,
    tenant_id   BLOB    NOT NULL,
    ts          INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    distinct_id TEXT,
    session_id  TEXT,
    properties  TEXT    NOT NULL
);
CREATE INDEX analytics_events_by_time ON analytics_events (tenant_id, ts, id);
CREATE INDEX analytics_events_by_name ON analytics_events (tenant_id, name, ts, id);

-- Events per (tenant, minute, name), written with the events: counts over a window are sums.
CREATE TABLE analytics_minutes (
    tenant_id BLOB    NOT NULL,
    minute    INTEGER NOT NULL,
    name      TEXT    NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, minute, name)
) WITHOUT ROWID;

-- Idempotency keys of batches, with the answer a retry gets again.
CREATE TABLE analytics_batches (
    tenant_id  BLOB    NOT NULL,
    key        TEXT    NOT NULL,
    answer     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
) WITHOUT ROWID;
CREATE INDEX analytics_batches_by_age ON analytics_batches (created_at);
