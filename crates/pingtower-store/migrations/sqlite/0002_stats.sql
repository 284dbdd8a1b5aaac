-- Statistics: rollups of check results per minute (level 0), hour (1) and day (2); older raw
-- results compacted into one blob per monitor, region and hour; results that arrived after
-- their minute was folded, waiting for the next fold; and the fold's watermark.
CREATE TABLE rollups (
    monitor_seq  INTEGER NOT NULL,
    level        INTEGER NOT NULL,
    bucket       INTEGER NOT NULL,
    data         BLOB NOT NULL,
    PRIMARY KEY (monitor_seq, level, bucket)
) WITHOUT ROWID;

CREATE TABLE result_chunks (
    monitor_seq  INTEGER NOT NULL,
    hour         INTEGER NOT NULL,
    region       TEXT NOT NULL,
    data         BLOB NOT NULL,
    PRIMARY KEY (monitor_seq, hour, region)
) WITHOUT ROWID;

CREATE TABLE late_results (
    monitor_seq  INTEGER NOT NULL,
    checked_at   INTEGER NOT NULL,
    region       TEXT NOT NULL,
    PRIMARY KEY (monitor_seq, checked_at, region)
) WITHOUT ROWID;

-- 'folded': every result checked before this instant (ms) is in the rollups, except those
-- listed in late_results; -1 until the first fold.
CREATE TABLE stats_state (
    name   TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
INSERT INTO stats_state (name, value) VALUES ('folded', -1);
