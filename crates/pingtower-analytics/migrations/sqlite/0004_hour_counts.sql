-- Per-hour counts without their users' sketches: a count over a month reads this index (a few
-- dozen bytes a row) rather than rows that carry a sketch of up to 4 KiB each.
CREATE INDEX analytics_hours_counts ON analytics_hours (tenant_id, hour, name, count);
