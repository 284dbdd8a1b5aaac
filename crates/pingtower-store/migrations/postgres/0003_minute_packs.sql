-- Minute rollups move out of `rollups` into one row per monitor and hour, holding that hour's
-- minutes together (core::stats::encode_minutes): a row per minute cost more in row and index
-- overhead than the rollup it held. Rows of the old form are not converted (this storage
-- never shipped in a release); hour and day rollups, which every window longer than a few
-- hours reads, are kept as they were.
CREATE TABLE minute_rollups (
    monitor_seq  BIGINT NOT NULL,
    hour         BIGINT NOT NULL,
    data         BYTEA NOT NULL,
    PRIMARY KEY (monitor_seq, hour)
);
DELETE FROM rollups WHERE level = 0;
