-- PingTower's data model, SQLite flavour. Ids are UUIDs as 16-byte blobs; times are integer
-- milliseconds since the Unix epoch (UTC); JSON is stored as TEXT.

CREATE TABLE tenants (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE users (
    id              BLOB PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    display_name    TEXT,
    password_hash   TEXT,
    platform_admin  INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL
);

CREATE TABLE memberships (
    tenant_id   BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);

CREATE TABLE api_keys (
    id            BLOB PRIMARY KEY,
    tenant_id     BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    prefix        TEXT NOT NULL UNIQUE,
    secret_hash   BLOB NOT NULL,
    created_by    BLOB,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id, id);

-- seq is the compact key of results; AUTOINCREMENT so a deleted monitor's seq is never reused.
CREATE TABLE monitors (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           BLOB NOT NULL UNIQUE,
    tenant_id    BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    settings     TEXT NOT NULL,
    interval_ms  INTEGER NOT NULL,
    timeout_ms   INTEGER NOT NULL,
    down_after   INTEGER NOT NULL,
    up_after     INTEGER NOT NULL,
    tags         TEXT NOT NULL,
    enabled      INTEGER NOT NULL,
    status       TEXT NOT NULL,
    push_token   TEXT UNIQUE,
    version      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX monitors_tenant_id ON monitors(tenant_id, id);

-- One row per check. No rowid: the primary key is the storage order, so a monitor's results are
-- contiguous and a (monitor, time range) read or prune is one range scan. A redelivered result
-- has the same key and is ignored.
CREATE TABLE check_results (
    monitor_seq  INTEGER NOT NULL,
    checked_at   INTEGER NOT NULL,
    region       TEXT NOT NULL,
    status       INTEGER NOT NULL,
    latency_us   INTEGER NOT NULL,
    reason       TEXT,
    details      TEXT,
    PRIMARY KEY (monitor_seq, checked_at, region)
) WITHOUT ROWID;

CREATE TABLE incidents (
    id               BLOB PRIMARY KEY,
    tenant_id        BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    monitor_id       BLOB NOT NULL REFERENCES monitors(id) ON DELETE CASCADE,
    transition       INTEGER NOT NULL,
    status           TEXT NOT NULL,
    reason           TEXT,
    opened_at        INTEGER NOT NULL,
    acknowledged_at  INTEGER,
    acknowledged_by  TEXT,
    resolved_at      INTEGER,
    UNIQUE (monitor_id, transition)
);
CREATE INDEX incidents_tenant ON incidents(tenant_id, id);

CREATE TABLE incident_events (
    id           BLOB PRIMARY KEY,
    incident_id  BLOB NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    at           INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    actor        TEXT,
    message      TEXT
);
CREATE INDEX incident_events_incident ON incident_events(incident_id, at);

-- Channels, rules, maintenance windows and status pages: a name, a JSON spec and a version.
CREATE TABLE resources (
    id          BLOB PRIMARY KEY,
    tenant_id   BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    slug        TEXT,
    spec        TEXT NOT NULL,
    secret      BLOB,
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, kind, name)
);
CREATE UNIQUE INDEX resources_slug ON resources(kind, slug) WHERE slug IS NOT NULL;

CREATE TABLE deliveries (
    id               BLOB PRIMARY KEY,
    tenant_id        BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    channel_id       BLOB NOT NULL,
    incident_id      BLOB,
    idempotency_key  TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    last_error       TEXT,
    response         TEXT,
    latency_ms       INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX deliveries_tenant ON deliveries(tenant_id, id);

CREATE TABLE audit_log (
    id         BLOB PRIMARY KEY,
    tenant_id  BLOB NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    detail     TEXT,
    at         INTEGER NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log(tenant_id, id);
