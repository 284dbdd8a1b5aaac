-- PingTower's data model, PostgreSQL flavour. Same tables and columns as the SQLite flavour;
-- ids are native UUIDs, times BIGINT milliseconds since the Unix epoch (UTC), JSON as TEXT.

CREATE TABLE tenants (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id              UUID PRIMARY KEY,
    email           TEXT NOT NULL UNIQUE,
    display_name    TEXT,
    password_hash   TEXT,
    platform_admin  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT NOT NULL
);

CREATE TABLE memberships (
    tenant_id   UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);

CREATE TABLE api_keys (
    id            UUID PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    prefix        TEXT NOT NULL UNIQUE,
    secret_hash   BYTEA NOT NULL,
    created_by    UUID,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id, id);

CREATE TABLE monitors (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           UUID NOT NULL UNIQUE,
    tenant_id    UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    settings     TEXT NOT NULL,
    interval_ms  BIGINT NOT NULL,
    timeout_ms   BIGINT NOT NULL,
    down_after   INTEGER NOT NULL,
    up_after     INTEGER NOT NULL,
    tags         TEXT NOT NULL,
    enabled      BOOLEAN NOT NULL,
    status       TEXT NOT NULL,
    push_token   TEXT UNIQUE,
    version      BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX monitors_tenant_id ON monitors(tenant_id, id);

-- Partitioned by day on checked_at: pruning old results drops whole partitions instead of
-- deleting rows. Partitions are created ahead of time by the store's maintenance; a default
-- partition catches anything outside them so an insert never fails for want of one.
CREATE TABLE check_results (
    monitor_seq  BIGINT NOT NULL,
    checked_at   BIGINT NOT NULL,
    region       TEXT NOT NULL,
    status       SMALLINT NOT NULL,
    latency_us   BIGINT NOT NULL,
    reason       TEXT,
    details      TEXT,
    PRIMARY KEY (monitor_seq, checked_at, region)
) PARTITION BY RANGE (checked_at);
CREATE TABLE check_results_default PARTITION OF check_results DEFAULT;

CREATE TABLE incidents (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    monitor_id       UUID NOT NULL REFERENCES monitors(id) ON DELETE CASCADE,
    transition       BIGINT NOT NULL,
    status           TEXT NOT NULL,
    reason           TEXT,
    opened_at        BIGINT NOT NULL,
    acknowledged_at  BIGINT,
    acknowledged_by  TEXT,
    resolved_at      BIGINT,
    UNIQUE (monitor_id, transition)
);
CREATE INDEX incidents_tenant ON incidents(tenant_id, id);

CREATE TABLE incident_events (
    id           UUID PRIMARY KEY,
    incident_id  UUID NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    at           BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    actor        TEXT,
    message      TEXT
);
CREATE INDEX incident_events_incident ON incident_events(incident_id, at);

CREATE TABLE resources (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    slug        TEXT,
    spec        TEXT NOT NULL,
    secret      BYTEA,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    UNIQUE (tenant_id, kind, name)
);
CREATE UNIQUE INDEX resources_slug ON resources(kind, slug) WHERE slug IS NOT NULL;

CREATE TABLE deliveries (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    channel_id       UUID NOT NULL,
    incident_id      UUID,
    idempotency_key  TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    last_error       TEXT,
    response         TEXT,
    latency_ms       BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX deliveries_tenant ON deliveries(tenant_id, id);

CREATE TABLE audit_log (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    detail     TEXT,
    at         BIGINT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log(tenant_id, id);
