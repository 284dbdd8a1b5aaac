-- Distinct users of each minute's events, as a sketch (crate::sketch); none for the minutes
-- counted before sketches were kept.
ALTER TABLE analytics_minutes ADD COLUMN users BLOB;

-- Events per (tenant, hour, name) with their users' sketch, written with the events, so that
-- long ranges merge a row per hour rather than per minute.
CREATE TABLE analytics_hours (
    tenant_id BLOB    NOT NULL,
    hour      INTEGER NOT NULL,
    name      TEXT    NOT NULL,
    count     INTEGER NOT NULL,
    users     BLOB,
    PRIMARY KEY (tenant_id, hour, name)
) WITHOUT ROWID;
INSERT INTO analytics_hours (tenant_id, hour, name, count)
    SELECT tenant_id, minute - minute % 3600000, name, SUM(count)
    FROM analytics_minutes GROUP BY tenant_id, minute - minute % 3600000, name;

-- From when every minute and hour has its sketch: the hour after the newest one counted so far.
CREATE TABLE analytics_sketches (since INTEGER NOT NULL);
INSERT INTO analytics_sketches (since)
    SELECT COALESCE(MAX(minute) - MAX(minute) % 3600000 + 3600000, 0) FROM analytics_minutes;
