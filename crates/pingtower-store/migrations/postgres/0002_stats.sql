-- Statistics: rollups of check results per minute (level 0), hour (1) and day (2); older raw
-- results compacted into one blob per monitor, region and hour; results that arrived after
-- their minute was folded, waiting for the next fold; and the fold's watermark.
CREATE TABLE rollups (
    monitor_seq  BIGINT NOT NULL,
    level        SMALLINT NOT NULL,
    bucket       BIGINT NOT NULL,
    data         BYTEA NOT NULL,
    PRIMARY KEY (monitor_seq, level, bucket)
);

CREATE TABLE result_chunks (
    monitor_seq  BIGINT NOT NULL,
    hour         BIGINT NOT NULL,
    region       TEXT NOT NULL,
    data         BYTEA NOT NULL,
    PRIMARY KEY (monitor_seq, hour, region)
);

CREATE TABLE late_results (
    monitor_seq  BIGINT NOT NULL,
    checked_at   BIGINT NOT NULL,
    region       TEXT NOT NULL,
    PRIMARY KEY (monitor_seq, checked_at, region)
);

-- 'folded': every result checked before this instant (ms) is in the rollups, except those
-- listed in late_results; -1 until the first fold. Result writers hold this row FOR SHARE
-- while they insert, the fold and the compaction FOR UPDATE, so that no result slips between
-- a fold's read and its watermark.
CREATE TABLE stats_state (
    name   TEXT PRIMARY KEY,
    value  BIGINT NOT NULL
);
INSERT INTO stats_state (name, value) VALUES ('folded', -1);
