-- Distinct users of each minute's events, as a sketch (crate::sketch); none for the minutes
-- counted before sketches were kept.
ALTER TABLE analytics_minutes ADD COLUMN users BYTEA;

-- Events per (tenant, hour, name) with their users' sketch, written with the events, so that
-- long ranges merge a row per hour rather than per minute.
CREATE TABLE analytics_hours (
    tenant_id UUID   NOT NULL,
    hour      BIGINT NOT NULL,
    name      TEXT   NOT NULL,
    count     BIGINT NOT NULL,
    users     BYTEA,
    PRIMARY KEY (tenant_id, hour, name)
);
INSERT INTO analytics_hours (tenant_id, hour, name, count)
    SELECT tenant_id, minute - minute % 3600000, name, SUM(count)
    FROM analytics_minutes GROUP BY tenant_id, minute - minute % 3600000, name;

-- From when every minute and hour has its sketch: the hour after the newest one counted so far.
CREATE TABLE analytics_sketches (since BIGINT NOT NULL);
INSERT INTO analytics_sketches (since)
    SELECT COALESCE(MAX(minute) - MAX(minute) % 3600000 + 3600000, 0) FROM analytics_minutes;
