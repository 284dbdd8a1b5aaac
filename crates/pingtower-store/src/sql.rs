//! Query text shared by both backends. Placeholders are `$N`: PostgreSQL binds them by number,
//! and the SQLite driver maps `$N` to the N-th argument too, so one text serves both.

pub(crate) const INSERT_TENANT: &str =
    "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)";
pub(crate) const GET_TENANT: &str = "SELECT id, name, created_at FROM tenants WHERE id = $1";
pub(crate) const LIST_TENANTS: &str = "SELECT id, name, created_at FROM tenants ORDER BY id";
pub(crate) const DELETE_TENANT: &str = "DELETE FROM tenants WHERE id = $1";

pub(crate) const INSERT_USER: &str = "INSERT INTO users (id, email, display_name, password_hash, \
     platform_admin, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const GET_USER: &str = "SELECT id, email, display_name, password_hash, platform_admin, \
     email_verified, created_at FROM users WHERE id = $1";
pub(crate) const FIND_USER_BY_EMAIL: &str = "SELECT id, email, display_name, password_hash, \
     platform_admin, email_verified, created_at FROM users WHERE email = $1";
pub(crate) const SET_PASSWORD: &str =
    "UPDATE users SET password_hash = $2, email_verified = $3 WHERE id = $1";
pub(crate) const REPLACE_PASSWORD: &str = "UPDATE users SET password_hash = $3, email_verified = \
     $4 WHERE id = $1 AND password_hash = $2";
pub(crate) const SET_EMAIL_VERIFIED: &str = "UPDATE users SET email_verified = $2 WHERE id = $1";

pub(crate) const INSERT_SESSION: &str = "INSERT INTO sessions (id, user_id, created_at, \
     expires_at, revoked_at) VALUES ($1, $2, $3, $4, NULL)";
pub(crate) const GET_SESSION: &str =
    "SELECT id, user_id, created_at, expires_at, revoked_at FROM sessions WHERE id = $1";
pub(crate) const REVOKE_SESSION: &str = "UPDATE sessions SET revoked_at = $3 WHERE id = $1 AND \
     user_id = $2 AND revoked_at IS NULL";
pub(crate) const REVOKE_SESSIONS_OF_USER: &str = "UPDATE sessions SET revoked_at = $3 WHERE \
     user_id = $1 AND id <> $2 AND revoked_at IS NULL";
/// Sessions long expired are not kept.
pub(crate) const PRUNE_SESSIONS: &str =
    "DELETE FROM sessions WHERE user_id = $1 AND expires_at < $2";

pub(crate) const INSERT_INVITATION: &str = "INSERT INTO invitations (id, tenant_id, email, role, \
     token_hash, invited_by, created_at, expires_at, accepted_at) VALUES ($1, $2, $3, $4, $5, $6, \
     $7, $8, NULL)";
pub(crate) const FIND_INVITATION: &str = "SELECT id, tenant_id, email, role, token_hash, \
     invited_by, created_at, expires_at, accepted_at FROM invitations WHERE token_hash = $1";
pub(crate) const PENDING_INVITATIONS: &str = "SELECT id, tenant_id, email, role, token_hash, \
     invited_by, created_at, expires_at, accepted_at FROM invitations WHERE tenant_id = $1 AND \
     accepted_at IS NULL AND expires_at > $2 ORDER BY id";
pub(crate) const DELETE_INVITATION: &str =
    "DELETE FROM invitations WHERE tenant_id = $1 AND id = $2 AND accepted_at IS NULL";
pub(crate) const ACCEPT_INVITATION: &str =
    "UPDATE invitations SET accepted_at = $2 WHERE id = $1 AND accepted_at IS NULL";
pub(crate) const COUNT_USERS: &str = "SELECT COUNT(*) FROM users";

pub(crate) const UPSERT_MEMBERSHIP: &str = "INSERT INTO memberships (tenant_id, user_id, role, \
     created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = \
     excluded.role RETURNING tenant_id, user_id, role, created_at";
/// Serializes membership changes of one tenant (a row lock on PostgreSQL; SQLite has one
/// writer anyway), so that two owners demoting each other at once cannot both pass the check.
pub(crate) const LOCK_TENANT: &str = "UPDATE tenants SET name = name WHERE id = $1";
pub(crate) const COUNT_OWNERS: &str =
    "SELECT COUNT(*) FROM memberships WHERE tenant_id = $1 AND role = 'owner'";
pub(crate) const DELETE_MEMBERSHIP: &str =
    "DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2";
pub(crate) const MEMBERSHIPS_OF_USER: &str = "SELECT tenant_id, user_id, role, created_at FROM \
     memberships WHERE user_id = $1 ORDER BY tenant_id";
pub(crate) const MEMBERS_OF_TENANT: &str = "SELECT tenant_id, user_id, role, created_at FROM \
     memberships WHERE tenant_id = $1 ORDER BY user_id";

const API_KEY_SELECT: &str = "SELECT id, tenant_id, name, role, prefix, secret_hash, created_by, \
     created_at, expires_at, last_used_at, revoked_at FROM api_keys";
pub(crate) const INSERT_API_KEY: &str = "INSERT INTO api_keys (id, tenant_id, name, role, prefix, \
     secret_hash, created_by, created_at, expires_at, last_used_at, revoked_at) VALUES ($1, $2, \
     $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub(crate) const REVOKE_API_KEY: &str = "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) \
     WHERE tenant_id = $1 AND id = $2";
pub(crate) const TOUCH_API_KEY: &str = "UPDATE api_keys SET last_used_at = $2 WHERE id = $1";

pub(crate) fn find_api_key_by_prefix() -> String {
    format!("{API_KEY_SELECT} WHERE prefix = $1")
}
pub(crate) fn list_api_keys() -> String {
    format!("{API_KEY_SELECT} WHERE tenant_id = $1 ORDER BY id")
}

const MONITOR_COLS: &str = "seq, id, tenant_id, name, kind, settings, interval_ms, timeout_ms, \
     down_after, up_after, tags, enabled, status, push_token, version, created_at, updated_at";

pub(crate) fn insert_monitor() -> String {
    format!(
        "INSERT INTO monitors (id, tenant_id, name, kind, settings, interval_ms, timeout_ms, \
         down_after, up_after, tags, enabled, status, push_token, version, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, $14, $14) \
         RETURNING {MONITOR_COLS}"
    )
}
pub(crate) fn get_monitor() -> String {
    format!("SELECT {MONITOR_COLS} FROM monitors WHERE tenant_id = $1 AND id = $2")
}
pub(crate) fn list_monitors() -> String {
    format!(
        "SELECT {MONITOR_COLS} FROM monitors WHERE tenant_id = $1 AND ($2 IS NULL OR status = $2) \
         AND ($3 IS NULL OR tags LIKE $3 ESCAPE '\\') AND ($4 IS NULL OR LOWER(name) LIKE $4 \
         ESCAPE '\\') AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6"
    )
}
/// The rank of [`crate::MonitorOrder::Attention`], as [`crate::MonitorOrder::rank`] has it.
const ATTENTION_RANK: &str = "(CASE status WHEN 'down' THEN 0 WHEN 'degraded' THEN 1 WHEN \
     'pending' THEN 2 WHEN 'maintenance' THEN 3 WHEN 'up' THEN 4 ELSE 5 END)";
pub(crate) fn list_monitors_by_attention() -> String {
    format!(
        "SELECT {MONITOR_COLS} FROM monitors WHERE tenant_id = $1 AND ($2 IS NULL OR status = $2) \
         AND ($3 IS NULL OR tags LIKE $3 ESCAPE '\\') AND ($4 IS NULL OR LOWER(name) LIKE $4 \
         ESCAPE '\\') AND ($5 IS NULL OR {ATTENTION_RANK} > $5 OR ({ATTENTION_RANK} = $5 AND \
         name > $6)) ORDER BY {ATTENTION_RANK}, name LIMIT $7"
    )
}
pub(crate) fn update_monitor() -> String {
    format!(
        "UPDATE monitors SET name = $4, kind = $5, settings = $6, interval_ms = $7, timeout_ms = \
         $8, down_after = $9, up_after = $10, tags = $11, enabled = $12, push_token = $13, \
         status = CASE WHEN $12 THEN (CASE WHEN status = 'paused' THEN 'pending' ELSE status END) \
         ELSE 'paused' END, version = version + 1, updated_at = $14 WHERE tenant_id = $1 AND id = \
         $2 AND ($3 IS NULL OR version = $3) RETURNING {MONITOR_COLS}"
    )
}
pub(crate) const MONITOR_VERSION: &str =
    "SELECT version FROM monitors WHERE tenant_id = $1 AND id = $2";
pub(crate) const SET_MONITOR_STATUS: &str =
    "UPDATE monitors SET status = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2";
pub(crate) const DELETE_MONITOR: &str = "DELETE FROM monitors WHERE tenant_id = $1 AND id = $2";
pub(crate) fn all_monitors() -> String {
    format!("SELECT {MONITOR_COLS} FROM monitors ORDER BY seq")
}
pub(crate) const SCHEDULE_ENTRIES: &str =
    "SELECT id, tenant_id, seq, kind, interval_ms, enabled, version FROM monitors ORDER BY seq";
pub(crate) fn monitors_by_ids_prefix() -> String {
    format!("SELECT {MONITOR_COLS} FROM monitors WHERE id IN (")
}
pub(crate) fn find_monitor_by_push_token() -> String {
    format!("SELECT {MONITOR_COLS} FROM monitors WHERE push_token = $1")
}

pub(crate) const LIST_RESULTS: &str = "SELECT m.id AS monitor_id, r.monitor_seq, m.tenant_id, \
     r.region, r.checked_at, r.status, r.latency_us, r.reason, r.details FROM check_results r \
     JOIN monitors m ON m.seq = r.monitor_seq WHERE m.tenant_id = $1 AND m.id = $2 AND ($3 IS \
     NULL OR r.checked_at < $3 OR (r.checked_at = $3 AND r.region < $4)) ORDER BY r.checked_at \
     DESC, r.region DESC LIMIT $5";
/// Oldest result of one monitor before a cutoff, or of any monitor after a given seq.
pub(crate) const NEXT_RESULT_SEQ: &str =
    "SELECT MIN(monitor_seq) FROM check_results WHERE monitor_seq > $1";
pub(crate) const OLDEST_RESULT_OF: &str =
    "SELECT MIN(checked_at) FROM check_results WHERE monitor_seq = $1";
pub(crate) const PRUNE_RESULTS_OF: &str =
    "DELETE FROM check_results WHERE monitor_seq = $1 AND checked_at < $2";

const INCIDENT_COLS: &str = "id, tenant_id, monitor_id, transition, status, reason, opened_at, \
     acknowledged_at, acknowledged_by, resolved_at";
pub(crate) fn insert_incident() -> String {
    format!(
        "INSERT INTO incidents (id, tenant_id, monitor_id, transition, status, reason, \
         opened_at) SELECT $1, $2, $3, $4, 'open', $5, $6 WHERE EXISTS (SELECT 1 FROM monitors \
         WHERE tenant_id = $2 AND id = $3) ON CONFLICT (monitor_id, transition) DO NOTHING \
         RETURNING {INCIDENT_COLS}"
    )
}
pub(crate) const MONITOR_EXISTS: &str =
    "SELECT COUNT(*) FROM monitors WHERE tenant_id = $1 AND id = $2";
pub(crate) fn get_incident() -> String {
    format!("SELECT {INCIDENT_COLS} FROM incidents WHERE tenant_id = $1 AND id = $2")
}
pub(crate) fn list_incidents() -> String {
    format!(
        "SELECT {INCIDENT_COLS} FROM incidents WHERE tenant_id = $1 AND ($2 IS NULL OR \
         monitor_id = $2) AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR id < $4) ORDER BY \
         id DESC LIMIT $5"
    )
}
/// The start of a query that the caller completes with the tenant's bind and conditions.
pub(crate) fn incidents_between() -> String {
    format!("SELECT {INCIDENT_COLS} FROM incidents WHERE tenant_id = ")
}
pub(crate) const MONITOR_SEQ: &str = "SELECT seq FROM monitors WHERE tenant_id = $1 AND id = $2";
pub(crate) fn acknowledge_incident() -> String {
    format!(
        "UPDATE incidents SET status = 'acknowledged', acknowledged_at = $3, acknowledged_by = \
         $4 WHERE tenant_id = $1 AND id = $2 AND status = 'open' RETURNING {INCIDENT_COLS}"
    )
}
pub(crate) fn resolve_incident() -> String {
    format!(
        "UPDATE incidents SET status = 'resolved', resolved_at = $3 WHERE tenant_id = $1 AND id \
         = $2 AND status <> 'resolved' RETURNING {INCIDENT_COLS}"
    )
}
pub(crate) const INSERT_INCIDENT_EVENT: &str = "INSERT INTO incident_events (id, incident_id, at, \
     kind, actor, message) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const INCIDENT_EVENTS: &str = "SELECT e.id, e.incident_id, e.at, e.kind, e.actor, \
     e.message FROM incident_events e JOIN incidents i ON i.id = e.incident_id WHERE i.tenant_id \
     = $1 AND i.id = $2 ORDER BY e.at, e.id";

const RESOURCE_COLS: &str =
    "id, tenant_id, kind, name, slug, spec, secret, version, created_at, updated_at";
pub(crate) fn insert_resource() -> String {
    format!(
        "INSERT INTO resources (id, tenant_id, kind, name, slug, spec, secret, version, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8) RETURNING \
         {RESOURCE_COLS}"
    )
}
pub(crate) fn get_resource() -> String {
    format!("SELECT {RESOURCE_COLS} FROM resources WHERE tenant_id = $1 AND kind = $2 AND id = $3")
}
pub(crate) fn list_resources() -> String {
    format!("SELECT {RESOURCE_COLS} FROM resources WHERE tenant_id = $1 AND kind = $2 ORDER BY id")
}
pub(crate) fn update_resource() -> String {
    format!(
        "UPDATE resources SET name = $4, slug = $5, spec = $6, secret = $7, version = version + \
         1, updated_at = $8 WHERE tenant_id = $1 AND id = $2 AND kind = $9 AND ($3 IS NULL OR \
         version = $3) RETURNING {RESOURCE_COLS}"
    )
}
pub(crate) const RESOURCE_VERSION: &str =
    "SELECT version FROM resources WHERE tenant_id = $1 AND id = $2 AND kind = $3";
pub(crate) const DELETE_RESOURCE: &str =
    "DELETE FROM resources WHERE tenant_id = $1 AND kind = $2 AND id = $3";
pub(crate) fn find_status_page() -> String {
    format!("SELECT {RESOURCE_COLS} FROM resources WHERE kind = 'status_page' AND slug = $1")
}

const DELIVERY_COLS: &str = "id, tenant_id, channel_id, incident_id, idempotency_key, status, \
     attempts, last_error, response, latency_ms, created_at, updated_at";
pub(crate) const INSERT_DELIVERY: &str = "INSERT INTO deliveries (id, tenant_id, channel_id, \
     incident_id, idempotency_key, status, attempts, last_error, response, latency_ms, \
     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON \
     CONFLICT (idempotency_key) DO NOTHING";
pub(crate) fn update_delivery() -> String {
    format!(
        "UPDATE deliveries SET status = $3, attempts = $4, last_error = $5, response = $6, \
         latency_ms = $7, updated_at = $8 WHERE tenant_id = $1 AND id = $2 RETURNING \
         {DELIVERY_COLS}"
    )
}
pub(crate) fn find_delivery_by_key() -> String {
    format!("SELECT {DELIVERY_COLS} FROM deliveries WHERE tenant_id = $1 AND idempotency_key = $2")
}
pub(crate) fn list_deliveries() -> String {
    format!(
        "SELECT {DELIVERY_COLS} FROM deliveries WHERE tenant_id = $1 AND ($2 IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3"
    )
}

pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_log (id, tenant_id, actor, action, target, \
     detail, at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const LIST_AUDIT: &str = "SELECT id, tenant_id, actor, action, target, detail, at FROM \
     audit_log WHERE tenant_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3";

/// A LIKE pattern that matches `needle` anywhere, with `\` escaping LIKE's wildcards.
pub(crate) fn contains_pattern(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_pattern_escapes_wildcards() {
        assert_eq!(super::contains_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
