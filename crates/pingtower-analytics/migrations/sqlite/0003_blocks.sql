-- Events packed by column (crate::packed): a block holds up to 4,096 events of one tenant and
-- hour, compressed. Events are appended to analytics_events and packed soon after.
CREATE TABLE analytics_blocks (
    id        INTEGER PRIMARY KEY,
    tenant_id BLOB    NOT NULL,
    hour      INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    min_ts    INTEGER NOT NULL,
    max_ts    INTEGER NOT NULL,
    data      BLOB    NOT NULL
);
CREATE INDEX analytics_blocks_by_hour ON analytics_blocks (tenant_id, hour);

-- analytics_events is now where events wait to be packed: its ids must never be given again
-- once its rows are packed away (AUTOINCREMENT), and listing by name reads few rows.
CREATE TABLE analytics_staged (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   BLOB    NOT NULL,
    ts          INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    distinct_id TEXT,
    session_id  TEXT,
    properties  TEXT    NOT NULL
);
INSERT INTO analytics_staged SELECT id, tenant_id, ts, name, distinct_id, session_id, properties
    FROM analytics_events;
DROP TABLE analytics_events;
ALTER TABLE analytics_staged RENAME TO analytics_events;
CREATE INDEX analytics_events_by_time ON analytics_events (tenant_id, ts, id);
