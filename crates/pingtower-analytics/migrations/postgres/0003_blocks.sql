-- Events packed by column (crate::packed): a block holds up to 4,096 events of one tenant and
-- hour, compressed. Events are appended to analytics_events and packed soon after.
CREATE TABLE analytics_blocks (
    id        BIGSERIAL PRIMARY KEY,
    tenant_id UUID   NOT NULL,
    hour      BIGINT NOT NULL,
    count     BIGINT NOT NULL,
    min_ts    BIGINT NOT NULL,
    max_ts    BIGINT NOT NULL,
    data      BYTEA  NOT NULL
);
CREATE INDEX analytics_blocks_by_hour ON analytics_blocks (tenant_id, hour);
-- Blocks are compressed already.
ALTER TABLE analytics_blocks ALTER COLUMN data SET STORAGE EXTERNAL;

-- analytics_events is now where events wait to be packed: the packer takes the oldest first.
CREATE INDEX analytics_events_by_id ON analytics_events (id);
DROP INDEX analytics_events_by_name;
