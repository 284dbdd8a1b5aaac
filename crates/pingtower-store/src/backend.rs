//! The part of the [`Store`](crate::Store) implementation that both backends share, written
//! once as a macro over the sqlx database type. Each backend supplies `reader()` and `writer()`
//! (the pools for reads and writes) and the engine-specific methods `write_results`,
//! `prepare_partitions`, `prune`, `release_compacted` and `reclaim`.

/// Decodes a JSON text column.
pub(crate) fn json_from_text<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> crate::Result<T> {
    serde_json::from_str(text).map_err(|e| crate::StoreError::corrupt(format!("{what}: {e}")))
}

/// Parses a stored enumeration.
pub(crate) fn parse_enum<T: std::str::FromStr<Err = pingtower_core::ParseEnumError>>(
    text: &str,
) -> crate::Result<T> {
    text.parse().map_err(crate::StoreError::corrupt)
}

/// Decodes a page cursor that is a UUID.
pub(crate) fn uuid_cursor(cursor: &Option<String>) -> crate::Result<Option<uuid::Uuid>> {
    cursor
        .as_deref()
        .map(|c| {
            uuid::Uuid::parse_str(c)
                .map_err(|_| crate::StoreError::InvalidInput(format!("invalid cursor `{c}`")))
        })
        .transpose()
}

/// Splits a cursor of the attention order, `RANK~NAME`.
pub(crate) fn attention_cursor(
    cursor: &Option<String>,
) -> crate::Result<(Option<i64>, Option<String>)> {
    match cursor.as_deref() {
        None => Ok((None, None)),
        Some(c) => c
            .split_once('~')
            .and_then(|(rank, name)| Some((rank.parse::<i64>().ok()?, name.to_owned())))
            .filter(|(rank, _)| {
                (0..=crate::MonitorOrder::rank(pingtower_core::MonitorStatus::Paused))
                    .contains(rank)
            })
            .map(|(rank, name)| (Some(rank), Some(name)))
            .ok_or_else(|| crate::StoreError::InvalidInput(format!("invalid cursor `{c}`"))),
    }
}

/// Splits a results cursor `MILLIS~REGION`.
pub(crate) fn results_cursor(cursor: &Option<String>) -> crate::Result<(Option<i64>, String)> {
    match cursor.as_deref() {
        None => Ok((None, String::new())),
        Some(c) => {
            let (ms, region) = c.split_once('~').unwrap_or((c, ""));
            let ms = ms
                .parse()
                .map_err(|_| crate::StoreError::InvalidInput(format!("invalid cursor `{c}`")))?;
            Ok((Some(ms), region.to_owned()))
        }
    }
}

/// One more than the limit is fetched to learn whether a next page exists.
pub(crate) fn fetch_limit(limit: u32) -> i64 {
    i64::from(limit.clamp(1, pingtower_core::page::MAX_LIMIT)) + 1
}

/// Cuts a fetched list to the limit and makes the cursor from the last kept item.
pub(crate) fn into_page<T>(
    mut items: Vec<T>,
    limit: u32,
    cursor_of: impl Fn(&T) -> String,
) -> pingtower_core::Page<T> {
    let limit = limit.clamp(1, pingtower_core::page::MAX_LIMIT) as usize;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|i| pingtower_core::Cursor(cursor_of(i)))
    } else {
        None
    };
    pingtower_core::Page { items, next_cursor }
}

macro_rules! store_impl {
    ($store:ty, $db:ty, $backend:expr) => {
        use crate::backend::{
            attention_cursor, fetch_limit, into_page, json_from_text, parse_enum, uuid_cursor,
        };
        use crate::{
            Backend, DeliveryUpdate, IncidentFilter, MonitorFilter, MonitorOrder, NewUser,
            PageRequest, Result, Store, StoreError, sql,
        };
        use async_trait::async_trait;
        use pingtower_core::*;
        use sqlx::{AssertSqlSafe, Row};

        type DbRow = <$db as sqlx::Database>::Row;

        fn ts(r: &DbRow, col: &str) -> Result<Timestamp> {
            Ok(Timestamp::from_millis(r.try_get::<i64, _>(col)?))
        }

        fn opt_ts(r: &DbRow, col: &str) -> Result<Option<Timestamp>> {
            Ok(r.try_get::<Option<i64>, _>(col)?
                .map(Timestamp::from_millis))
        }

        fn tenant_row(r: &DbRow) -> Result<Tenant> {
            Ok(Tenant {
                id: TenantId(r.try_get("id")?),
                name: r.try_get("name")?,
                created_at: ts(r, "created_at")?,
            })
        }

        fn user_row(r: &DbRow) -> Result<User> {
            Ok(User {
                id: UserId(r.try_get("id")?),
                email: r.try_get("email")?,
                display_name: r.try_get("display_name")?,
                password_hash: r.try_get("password_hash")?,
                platform_admin: r.try_get("platform_admin")?,
                email_verified: r.try_get("email_verified")?,
                created_at: ts(r, "created_at")?,
            })
        }

        fn session_row(r: &DbRow) -> Result<Session> {
            Ok(Session {
                id: SessionId(r.try_get("id")?),
                user_id: UserId(r.try_get("user_id")?),
                created_at: ts(r, "created_at")?,
                expires_at: ts(r, "expires_at")?,
                revoked_at: opt_ts(r, "revoked_at")?,
            })
        }

        fn invitation_row(r: &DbRow) -> Result<Invitation> {
            Ok(Invitation {
                id: InvitationId(r.try_get("id")?),
                tenant_id: TenantId(r.try_get("tenant_id")?),
                email: r.try_get("email")?,
                role: parse_enum(r.try_get::<&str, _>("role")?)?,
                token_hash: r.try_get("token_hash")?,
                invited_by: r
                    .try_get::<Option<uuid::Uuid>, _>("invited_by")?
                    .map(UserId),
                created_at: ts(r, "created_at")?,
                expires_at: ts(r, "expires_at")?,
                accepted_at: opt_ts(r, "accepted_at")?,
            })
        }

        fn membership_row(r: &DbRow) -> Result<Membership> {
            Ok(Membership {
                tenant_id: TenantId(r.try_get("tenant_id")?),
                user_id: UserId(r.try_get("user_id")?),
                role: parse_enum(r.try_get::<&str, _>("role")?)?,
                created_at: ts(r, "created_at")?,
            })
        }

        fn api_key_row(r: &DbRow) -> Result<ApiKey> {
            Ok(ApiKey {
                id: ApiKeyId(r.try_get("id")?),
                tenant_id: TenantId(r.try_get("tenant_id")?),
                name: r.try_get("name")?,
                role: parse_enum(r.try_get::<&str, _>("role")?)?,
                prefix: r.try_get("prefix")?,
                secret_hash: r.try_get("secret_hash")?,
                created_by: r
                    .try_get::<Option<uuid::Uuid>, _>("created_by")?
                    .map(UserId),
                created_at: ts(r, "created_at")?,
                expires_at: opt_ts(r, "expires_at")?,
                last_used_at: opt_ts(r, "last_used_at")?,
                revoked_at: opt_ts(r, "revoked_at")?,
            })
        }

        fn monitor_row(r: &DbRow) -> Result<Monitor> {
            Ok(Monitor {
                id: MonitorId(r.try_get("id")?),
                seq: r.try_get("seq")?,
                tenant_id: TenantId(r.try_get("tenant_id")?),
                name: r.try_get("name")?,
                kind: parse_enum(r.try_get::<&str, _>("kind")?)?,
                settings: json_from_text(r.try_get::<&str, _>("settings")?, "monitor settings")?,
                interval_ms: r.try_get("interval_ms")?,
                timeout_ms: r.try_get("timeout_ms")?,
                down_after: r.try_get("down_after")?,
                up_after: r.try_get("up_after")?,
                tags: json_from_text(r.try_get::<&str, _>("tags")?, "monitor tags")?,
                enabled: r.try_get("enabled")?,
                status: parse_enum(r.try_get::<&str, _>("status")?)?,
                push_token: r.try_get("push_token")?,
                version: r.try_get("version")?,
                created_at: ts(r, "created_at")?,
                updated_at: ts(r, "updated_at")?,
            })
        }

        fn result_row(r: &DbRow) -> Result<CheckResult> {
            let code: i16 = r.try_get("status")?;
            let details: Option<&str> = r.try_get("details")?;
            Ok(CheckResult {
                monitor_id: MonitorId(r.try_get("monitor_id")?),
                monitor_seq: r.try_get("monitor_seq")?,
                tenant_id: TenantId(r.try_get("tenant_id")?),
                region: r.try_get("region")?,
                checked_at: ts(r, "checked_at")?,
                status: CheckStatus::from_code(code)
                    .ok_or_else(|| StoreError::corrupt(format!("result status code {code}")))?,
                latency_us: r.try_get("latency_us")?,
                reason: r.try_get("reason")?,
                details: details
                    .map(|d| json_from_text(d, "result details"))
                    .transpose()?,
            })
        }

        fn incident_row(r: &DbRow) -> Result<Incident> {
            Ok(Incident {
                id: IncidentId(r.try_get("id")?),
                tenant_id: TenantId(r.try_get("tenant_id")?),
                monitor_id: MonitorId(r.try_get("monitor_id")?),
                transition: r.try_get("transition")?,
                status: parse_enum(r.try_get::<&str, _>("status")?)?,
                reason: r.try_get("reason")?,
                opened_at: ts(r, "opened_at")?,
                acknowledged_at: opt_ts(r, "acknowledged_at")?,
                acknowledged_by: r.try_get("acknowledged_by")?,
                resolved_at: opt_ts(r, "resolved_at")?,
            })
        }

        fn incident_event_row(r: &DbRow) -> Result<IncidentEvent> {
            Ok(IncidentEvent {
                id: IncidentEventId(r.try_get("id")?),
                incident_id: IncidentId(r.try_get("incident_id")?),
                at: ts(r, "at")?,
                kind: parse_enum(r.try_get::<&str, _>("kind")?)?,
                actor: r.try_get("actor")?,
                message: r.try_get("message")?,
            })
        }

        fn resource_row(r: &DbRow) -> Result<Resource> {
            Ok(Resource {
                id: ResourceId(r.try_get("id")?),
                tenant_id: TenantId(r.try_get("tenant_id")?),
                kind: parse_enum(r.try_get::<&str, _>("kind")?)?,
                name: r.try_get("name")?,
                slug: r.try_get("slug")?,
                spec: json_from_text(r.try_get::<&str, _>("spec")?, "resource spec")?,
                secret: r.try_get("secret")?,
                version: r.try_get("version")?,
                created_at: ts(r, "created_at")?,
                updated_at: ts(r, "updated_at")?,
            })
        }

        fn delivery_row(r: &DbRow) -> Result<Delivery> {
            Ok(Delivery {
                id: DeliveryId(r.try_get("id")?),
                tenant_id: TenantId(r.try_get("tenant_id")?),
                channel_id: ResourceId(r.try_get("channel_id")?),
                incident_id: r
                    .try_get::<Option<uuid::Uuid>, _>("incident_id")?
                    .map(IncidentId),
                idempotency_key: r.try_get("idempotency_key")?,
                status: parse_enum(r.try_get::<&str, _>("status")?)?,
                attempts: r.try_get("attempts")?,
                last_error: r.try_get("last_error")?,
                response: r.try_get("response")?,
                latency_ms: r.try_get("latency_ms")?,
                created_at: ts(r, "created_at")?,
                updated_at: ts(r, "updated_at")?,
            })
        }

        fn audit_row(r: &DbRow) -> Result<AuditEntry> {
            Ok(AuditEntry {
                id: AuditId(r.try_get("id")?),
                tenant_id: TenantId(r.try_get("tenant_id")?),
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                detail: r.try_get("detail")?,
                at: ts(r, "at")?,
            })
        }

        /// Appends one entry to an incident's timeline, in the caller's transaction.
        async fn insert_event(
            conn: &mut <$db as sqlx::Database>::Connection,
            event: &IncidentEvent,
        ) -> Result<()> {
            sqlx::query(sql::INSERT_INCIDENT_EVENT)
                .bind(event.id.0)
                .bind(event.incident_id.0)
                .bind(event.at.as_millis())
                .bind(event.kind.as_str())
                .bind(&event.actor)
                .bind(&event.message)
                .execute(conn)
                .await?;
            Ok(())
        }

        fn event(
            incident: IncidentId,
            kind: IncidentEventKind,
            actor: Option<&str>,
            message: Option<&str>,
            at: Timestamp,
        ) -> IncidentEvent {
            IncidentEvent {
                id: IncidentEventId::new(),
                incident_id: incident,
                at,
                kind,
                actor: actor.map(str::to_owned),
                message: message.map(str::to_owned),
            }
        }

        fn to_json(v: &impl serde::Serialize) -> Result<String> {
            serde_json::to_string(v).map_err(StoreError::corrupt)
        }

        fn normalize_email(email: &str) -> String {
            email.trim().to_lowercase()
        }

        impl $store {
            /// Tells a version mismatch from a missing row after a guarded update changed
            /// nothing.
            async fn version_error(&self, sql: &'static str, args: VersionArgs) -> StoreError {
                let q = sqlx::query_scalar::<_, i64>(sql).bind(args.0).bind(args.1);
                let q = match args.2 {
                    Some(kind) => q.bind(kind),
                    None => q,
                };
                match q.fetch_optional(self.reader()).await {
                    Ok(Some(current)) => StoreError::VersionMismatch { current },
                    Ok(None) => StoreError::NotFound,
                    Err(e) => e.into(),
                }
            }
        }

        impl $store {
            /// Deletes results older than `cutoff`, one monitor and at most six hours of its
            /// results per statement, so that no single delete holds writers up for long.
            async fn prune_rows(&self, cutoff: Timestamp) -> Result<u64> {
                const STEP_MS: i64 = 6 * 3_600_000;
                /// Monitors per transaction: one commit (one fsync on SQLite) per group.
                const MONITORS_PER_TX: usize = 200;
                let mut seqs = Vec::new();
                let mut after = i64::MIN;
                loop {
                    let next: Option<i64> = sqlx::query_scalar(sql::NEXT_RESULT_SEQ)
                        .bind(after)
                        .fetch_one(self.reader())
                        .await?;
                    let Some(seq) = next else { break };
                    seqs.push(seq);
                    after = seq;
                }
                let mut removed = 0;
                for group in seqs.chunks(MONITORS_PER_TX) {
                    let mut tx = self.writer().begin().await?;
                    for seq in group {
                        let oldest: Option<i64> = sqlx::query_scalar(sql::OLDEST_RESULT_OF)
                            .bind(seq)
                            .fetch_one(&mut *tx)
                            .await?;
                        let mut from = oldest.unwrap_or(i64::MAX);
                        while from < cutoff.as_millis() {
                            let to = from.saturating_add(STEP_MS).min(cutoff.as_millis());
                            removed += sqlx::query(sql::PRUNE_RESULTS_OF)
                                .bind(seq)
                                .bind(to)
                                .execute(&mut *tx)
                                .await?
                                .rows_affected();
                            from = to;
                        }
                    }
                    tx.commit().await?;
                }
                Ok(removed)
            }
        }

        struct VersionArgs(uuid::Uuid, uuid::Uuid, Option<&'static str>);

        /// Takes the tenant's lock for membership changes; answers its owners now.
        async fn lock_and_count_owners(
            tx: &mut sqlx::Transaction<'_, $db>,
            tenant: TenantId,
        ) -> Result<i64> {
            let locked = sqlx::query(sql::LOCK_TENANT)
                .bind(tenant.0)
                .execute(&mut **tx)
                .await?;
            if locked.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(sqlx::query_scalar(sql::COUNT_OWNERS)
                .bind(tenant.0)
                .fetch_one(&mut **tx)
                .await?)
        }

        /// `Err(LastOwner)` when a tenant that had an owner has none now.
        async fn keeps_an_owner(
            tx: &mut sqlx::Transaction<'_, $db>,
            tenant: TenantId,
            owners_before: i64,
        ) -> Result<()> {
            let owners: i64 = sqlx::query_scalar(sql::COUNT_OWNERS)
                .bind(tenant.0)
                .fetch_one(&mut **tx)
                .await?;
            if owners_before > 0 && owners == 0 {
                return Err(StoreError::LastOwner);
            }
            Ok(())
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                $backend
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(self.reader()).await?;
                Ok(())
            }

            async fn close(&self) {
                self.close_pools().await;
            }

            async fn create_tenant(&self, name: &str, now: Timestamp) -> Result<Tenant> {
                let tenant = Tenant {
                    id: TenantId::new(),
                    name: name.to_owned(),
                    created_at: now,
                };
                sqlx::query(sql::INSERT_TENANT)
                    .bind(tenant.id.0)
                    .bind(&tenant.name)
                    .bind(now.as_millis())
                    .execute(self.writer())
                    .await?;
                Ok(tenant)
            }

            async fn get_tenant(&self, id: TenantId) -> Result<Tenant> {
                let row = sqlx::query(sql::GET_TENANT)
                    .bind(id.0)
                    .fetch_one(self.reader())
                    .await?;
                tenant_row(&row)
            }

            async fn list_tenants(&self) -> Result<Vec<Tenant>> {
                let rows = sqlx::query(sql::LIST_TENANTS)
                    .fetch_all(self.reader())
                    .await?;
                rows.iter().map(tenant_row).collect()
            }

            async fn delete_tenant(&self, id: TenantId) -> Result<()> {
                let done = sqlx::query(sql::DELETE_TENANT)
                    .bind(id.0)
                    .execute(self.writer())
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn create_user(&self, user: &NewUser, now: Timestamp) -> Result<User> {
                let created = User {
                    id: UserId::new(),
                    email: normalize_email(&user.email),
                    display_name: user.display_name.clone(),
                    password_hash: user.password_hash.clone(),
                    platform_admin: user.platform_admin,
                    email_verified: true,
                    created_at: now,
                };
                sqlx::query(sql::INSERT_USER)
                    .bind(created.id.0)
                    .bind(&created.email)
                    .bind(&created.display_name)
                    .bind(&created.password_hash)
                    .bind(created.platform_admin)
                    .bind(now.as_millis())
                    .execute(self.writer())
                    .await?;
                Ok(created)
            }

            async fn get_user(&self, id: UserId) -> Result<User> {
                let row = sqlx::query(sql::GET_USER)
                    .bind(id.0)
                    .fetch_one(self.reader())
                    .await?;
                user_row(&row)
            }

            async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
                let row = sqlx::query(sql::FIND_USER_BY_EMAIL)
                    .bind(normalize_email(email))
                    .fetch_optional(self.reader())
                    .await?;
                row.as_ref().map(user_row).transpose()
            }

            async fn count_users(&self) -> Result<i64> {
                Ok(sqlx::query_scalar::<_, i64>(sql::COUNT_USERS)
                    .fetch_one(self.reader())
                    .await?)
            }

            async fn set_password(
                &self,
                user: UserId,
                hash: Option<&str>,
                email_verified: bool,
            ) -> Result<()> {
                let done = sqlx::query(sql::SET_PASSWORD)
                    .bind(user.0)
                    .bind(hash)
                    .bind(email_verified)
                    .execute(self.writer())
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn replace_password(
                &self,
                user: UserId,
                old: &str,
                new: &str,
                email_verified: bool,
            ) -> Result<bool> {
                let done = sqlx::query(sql::REPLACE_PASSWORD)
                    .bind(user.0)
                    .bind(old)
                    .bind(new)
                    .bind(email_verified)
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_email_verified(&self, user: UserId, verified: bool) -> Result<()> {
                let done = sqlx::query(sql::SET_EMAIL_VERIFIED)
                    .bind(user.0)
                    .bind(verified)
                    .execute(self.writer())
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn create_session(&self, session: &Session) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                // A week past expiry, nothing needs a session any more.
                sqlx::query(sql::PRUNE_SESSIONS)
                    .bind(session.user_id.0)
                    .bind(session.created_at.as_millis() - 7 * 86_400_000)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(sql::INSERT_SESSION)
                    .bind(session.id.0)
                    .bind(session.user_id.0)
                    .bind(session.created_at.as_millis())
                    .bind(session.expires_at.as_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                            StoreError::NotFound
                        }
                        other => other.into(),
                    })?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_session(&self, id: SessionId) -> Result<Option<Session>> {
                let row = sqlx::query(sql::GET_SESSION)
                    .bind(id.0)
                    .fetch_optional(self.writer())
                    .await?;
                row.as_ref().map(session_row).transpose()
            }

            async fn revoke_session(
                &self,
                user: UserId,
                id: SessionId,
                now: Timestamp,
            ) -> Result<bool> {
                let done = sqlx::query(sql::REVOKE_SESSION)
                    .bind(id.0)
                    .bind(user.0)
                    .bind(now.as_millis())
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn revoke_sessions_of_user(
                &self,
                user: UserId,
                keep: Option<SessionId>,
                now: Timestamp,
            ) -> Result<u64> {
                let done = sqlx::query(sql::REVOKE_SESSIONS_OF_USER)
                    .bind(user.0)
                    .bind(keep.map_or(uuid::Uuid::nil(), |k| k.0))
                    .bind(now.as_millis())
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected())
            }

            async fn create_invitation(&self, inv: &Invitation) -> Result<()> {
                sqlx::query(sql::INSERT_INVITATION)
                    .bind(inv.id.0)
                    .bind(inv.tenant_id.0)
                    .bind(normalize_email(&inv.email))
                    .bind(inv.role.as_str())
                    .bind(&inv.token_hash)
                    .bind(inv.invited_by.map(|u| u.0))
                    .bind(inv.created_at.as_millis())
                    .bind(inv.expires_at.as_millis())
                    .execute(self.writer())
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                            StoreError::NotFound
                        }
                        other => other.into(),
                    })?;
                Ok(())
            }

            async fn find_invitation(&self, token_hash: &[u8]) -> Result<Option<Invitation>> {
                let row = sqlx::query(sql::FIND_INVITATION)
                    .bind(token_hash)
                    .fetch_optional(self.writer())
                    .await?;
                row.as_ref().map(invitation_row).transpose()
            }

            async fn pending_invitations(
                &self,
                tenant: TenantId,
                now: Timestamp,
            ) -> Result<Vec<Invitation>> {
                let rows = sqlx::query(sql::PENDING_INVITATIONS)
                    .bind(tenant.0)
                    .bind(now.as_millis())
                    .fetch_all(self.reader())
                    .await?;
                rows.iter().map(invitation_row).collect()
            }

            async fn delete_invitation(&self, tenant: TenantId, id: InvitationId) -> Result<()> {
                let done = sqlx::query(sql::DELETE_INVITATION)
                    .bind(tenant.0)
                    .bind(id.0)
                    .execute(self.writer())
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn accept_invitation(&self, id: InvitationId, now: Timestamp) -> Result<bool> {
                let done = sqlx::query(sql::ACCEPT_INVITATION)
                    .bind(id.0)
                    .bind(now.as_millis())
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn set_membership(
                &self,
                tenant: TenantId,
                user: UserId,
                role: Role,
                now: Timestamp,
            ) -> Result<Membership> {
                let mut tx = self.writer().begin().await?;
                let owners_before = lock_and_count_owners(&mut tx, tenant).await?;
                let row = sqlx::query(sql::UPSERT_MEMBERSHIP)
                    .bind(tenant.0)
                    .bind(user.0)
                    .bind(role.as_str())
                    .bind(now.as_millis())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| match e {
                        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                            StoreError::NotFound
                        }
                        other => other.into(),
                    })?;
                let membership = membership_row(&row)?;
                keeps_an_owner(&mut tx, tenant, owners_before).await?;
                tx.commit().await?;
                Ok(membership)
            }

            async fn remove_membership(&self, tenant: TenantId, user: UserId) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                let owners_before = lock_and_count_owners(&mut tx, tenant).await?;
                let done = sqlx::query(sql::DELETE_MEMBERSHIP)
                    .bind(tenant.0)
                    .bind(user.0)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                keeps_an_owner(&mut tx, tenant, owners_before).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn memberships_of_user(&self, user: UserId) -> Result<Vec<Membership>> {
                let rows = sqlx::query(sql::MEMBERSHIPS_OF_USER)
                    .bind(user.0)
                    .fetch_all(self.reader())
                    .await?;
                rows.iter().map(membership_row).collect()
            }

            async fn members_of_tenant(&self, tenant: TenantId) -> Result<Vec<Membership>> {
                let rows = sqlx::query(sql::MEMBERS_OF_TENANT)
                    .bind(tenant.0)
                    .fetch_all(self.reader())
                    .await?;
                rows.iter().map(membership_row).collect()
            }

            async fn create_api_key(&self, key: &ApiKey) -> Result<()> {
                sqlx::query(sql::INSERT_API_KEY)
                    .bind(key.id.0)
                    .bind(key.tenant_id.0)
                    .bind(&key.name)
                    .bind(key.role.as_str())
                    .bind(&key.prefix)
                    .bind(&key.secret_hash)
                    .bind(key.created_by.map(|u| u.0))
                    .bind(key.created_at.as_millis())
                    .bind(key.expires_at.map(Timestamp::as_millis))
                    .bind(key.last_used_at.map(Timestamp::as_millis))
                    .bind(key.revoked_at.map(Timestamp::as_millis))
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn find_api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKey>> {
                let row = sqlx::query(AssertSqlSafe(sql::find_api_key_by_prefix()))
                    .bind(prefix)
                    .fetch_optional(self.reader())
                    .await?;
                row.as_ref().map(api_key_row).transpose()
            }

            async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKey>> {
                let rows = sqlx::query(AssertSqlSafe(sql::list_api_keys()))
                    .bind(tenant.0)
                    .fetch_all(self.reader())
                    .await?;
                rows.iter().map(api_key_row).collect()
            }

            async fn revoke_api_key(
                &self,
                tenant: TenantId,
                id: ApiKeyId,
                now: Timestamp,
            ) -> Result<()> {
                let done = sqlx::query(sql::REVOKE_API_KEY)
                    .bind(tenant.0)
                    .bind(id.0)
                    .bind(now.as_millis())
                    .execute(self.writer())
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn touch_api_key(&self, id: ApiKeyId, now: Timestamp) -> Result<()> {
                sqlx::query(sql::TOUCH_API_KEY)
                    .bind(id.0)
                    .bind(now.as_millis())
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn create_monitor(
                &self,
                tenant: TenantId,
                m: &NewMonitor,
                now: Timestamp,
            ) -> Result<Monitor> {
                let mut created = self
                    .create_monitors(tenant, std::slice::from_ref(m), now)
                    .await?;
                created.pop().ok_or(StoreError::NotFound)
            }

            async fn create_monitors(
                &self,
                tenant: TenantId,
                monitors: &[NewMonitor],
                now: Timestamp,
            ) -> Result<Vec<Monitor>> {
                let mut tx = self.writer().begin().await?;
                let mut created = Vec::with_capacity(monitors.len());
                let sql = sql::insert_monitor();
                for m in monitors {
                    let status = if m.enabled {
                        MonitorStatus::Pending
                    } else {
                        MonitorStatus::Paused
                    };
                    let row = sqlx::query(AssertSqlSafe(sql.as_str()))
                        .bind(MonitorId::new().0)
                        .bind(tenant.0)
                        .bind(&m.name)
                        .bind(m.kind.as_str())
                        .bind(to_json(&m.settings)?)
                        .bind(m.interval_ms)
                        .bind(m.timeout_ms)
                        .bind(m.down_after)
                        .bind(m.up_after)
                        .bind(to_json(&m.tags)?)
                        .bind(m.enabled)
                        .bind(status.as_str())
                        .bind(&m.push_token)
                        .bind(now.as_millis())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(|e| match e {
                            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                                StoreError::NotFound
                            }
                            other => other.into(),
                        })?;
                    created.push(monitor_row(&row)?);
                }
                tx.commit().await?;
                Ok(created)
            }

            async fn get_monitor(&self, tenant: TenantId, id: MonitorId) -> Result<Monitor> {
                let row = sqlx::query(AssertSqlSafe(sql::get_monitor()))
                    .bind(tenant.0)
                    .bind(id.0)
                    .fetch_one(self.reader())
                    .await?;
                monitor_row(&row)
            }

            async fn count_monitors(&self, tenant: TenantId) -> Result<Vec<(MonitorStatus, i64)>> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT status, COUNT(*) FROM monitors WHERE tenant_id = $1 GROUP BY status \
                     ORDER BY status",
                )
                .bind(tenant.0)
                .fetch_all(self.reader())
                .await?;
                rows.into_iter()
                    .map(|(s, n)| {
                        s.parse::<MonitorStatus>()
                            .map(|s| (s, n))
                            .map_err(|_| StoreError::corrupt(format!("monitor status {s}")))
                    })
                    .collect()
            }

            async fn list_monitors(
                &self,
                tenant: TenantId,
                filter: &MonitorFilter,
                page: &PageRequest,
            ) -> Result<Page<Monitor>> {
                let tag = filter
                    .tag
                    .as_ref()
                    .map(|t| to_json(t).map(|j| sql::contains_pattern(&j)))
                    .transpose()?;
                let search = filter
                    .search
                    .as_ref()
                    .map(|s| sql::contains_pattern(&s.to_lowercase()));
                let status = filter.status.map(MonitorStatus::as_str);
                if filter.order == MonitorOrder::Attention {
                    let (rank, name) = attention_cursor(&page.cursor)?;
                    let rows = sqlx::query(AssertSqlSafe(sql::list_monitors_by_attention()))
                        .bind(tenant.0)
                        .bind(status)
                        .bind(tag)
                        .bind(search)
                        .bind(rank)
                        .bind(name)
                        .bind(fetch_limit(page.limit))
                        .fetch_all(self.reader())
                        .await?;
                    let items = rows.iter().map(monitor_row).collect::<Result<Vec<_>>>()?;
                    return Ok(into_page(items, page.limit, |m| {
                        format!("{}~{}", MonitorOrder::rank(m.status), m.name)
                    }));
                }
                let rows = sqlx::query(AssertSqlSafe(sql::list_monitors()))
                    .bind(tenant.0)
                    .bind(status)
                    .bind(tag)
                    .bind(search)
                    .bind(uuid_cursor(&page.cursor)?)
                    .bind(fetch_limit(page.limit))
                    .fetch_all(self.reader())
                    .await?;
                let items = rows.iter().map(monitor_row).collect::<Result<Vec<_>>>()?;
                Ok(into_page(items, page.limit, |m| m.id.to_string()))
            }

            async fn update_monitor(
                &self,
                tenant: TenantId,
                id: MonitorId,
                expected_version: Option<i64>,
                m: &NewMonitor,
                now: Timestamp,
            ) -> Result<Monitor> {
                let row = sqlx::query(AssertSqlSafe(sql::update_monitor()))
                    .bind(tenant.0)
                    .bind(id.0)
                    .bind(expected_version)
                    .bind(&m.name)
                    .bind(m.kind.as_str())
                    .bind(to_json(&m.settings)?)
                    .bind(m.interval_ms)
                    .bind(m.timeout_ms)
                    .bind(m.down_after)
                    .bind(m.up_after)
                    .bind(to_json(&m.tags)?)
                    .bind(m.enabled)
                    .bind(&m.push_token)
                    .bind(now.as_millis())
                    .fetch_optional(self.writer())
                    .await?;
                match row {
                    Some(row) => monitor_row(&row),
                    None => Err(self
                        .version_error(sql::MONITOR_VERSION, VersionArgs(tenant.0, id.0, None))
                        .await),
                }
            }

            async fn set_monitor_status(
                &self,
                tenant: TenantId,
                id: MonitorId,
                status: MonitorStatus,
                now: Timestamp,
            ) -> Result<()> {
                let done = sqlx::query(sql::SET_MONITOR_STATUS)
                    .bind(tenant.0)
                    .bind(id.0)
                    .bind(status.as_str())
                    .bind(now.as_millis())
                    .execute(self.writer())
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn delete_monitor(&self, tenant: TenantId, id: MonitorId) -> Result<()> {
                let done = sqlx::query(sql::DELETE_MONITOR)
                    .bind(tenant.0)
                    .bind(id.0)
                    .execute(self.writer())
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn all_monitors(&self) -> Result<Vec<Monitor>> {
                let rows = sqlx::query(AssertSqlSafe(sql::all_monitors()))
                    .fetch_all(self.reader())
                    .await?;
                rows.iter().map(monitor_row).collect()
            }

            async fn schedule_entries(&self) -> Result<Vec<crate::ScheduleEntry>> {
                use futures::TryStreamExt;
                // Streamed row by row: a million monitors never sit in memory as rows.
                let mut rows = sqlx::query(sql::SCHEDULE_ENTRIES).fetch(self.reader());
                let mut entries = Vec::new();
                while let Some(r) = rows.try_next().await? {
                    entries.push(crate::ScheduleEntry {
                        id: MonitorId(r.try_get("id")?),
                        tenant_id: TenantId(r.try_get("tenant_id")?),
                        seq: r.try_get("seq")?,
                        kind: parse_enum(r.try_get::<&str, _>("kind")?)?,
                        interval_ms: r.try_get("interval_ms")?,
                        enabled: r.try_get("enabled")?,
                        version: r.try_get("version")?,
                    });
                }
                Ok(entries)
            }

            async fn monitors_by_ids(&self, ids: &[MonitorId]) -> Result<Vec<Monitor>> {
                // In chunks that keep the number of bound parameters well under every limit.
                let mut found = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(500) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(sql::monitors_by_ids_prefix());
                    let mut list = q.separated(", ");
                    for id in chunk {
                        list.push_bind(id.0);
                    }
                    q.push(")");
                    for row in q.build().fetch_all(self.reader()).await? {
                        found.push(monitor_row(&row)?);
                    }
                }
                Ok(found)
            }

            async fn find_monitor_by_push_token(&self, token: &str) -> Result<Option<Monitor>> {
                let row = sqlx::query(AssertSqlSafe(sql::find_monitor_by_push_token()))
                    .bind(token)
                    .fetch_optional(self.reader())
                    .await?;
                row.as_ref().map(monitor_row).transpose()
            }

            async fn insert_results(&self, results: &[CheckResult]) -> Result<u64> {
                if results.is_empty() {
                    return Ok(0);
                }
                self.write_results(results).await
            }

            async fn list_results(
                &self,
                tenant: TenantId,
                monitor: MonitorId,
                page: &PageRequest,
            ) -> Result<Page<CheckResult>> {
                let (before, region) = crate::backend::results_cursor(&page.cursor)?;
                let rows = sqlx::query(sql::LIST_RESULTS)
                    .bind(tenant.0)
                    .bind(monitor.0)
                    .bind(before)
                    .bind(&region)
                    .bind(fetch_limit(page.limit))
                    .fetch_all(self.reader())
                    .await?;
                let mut items = rows.iter().map(result_row).collect::<Result<Vec<_>>>()?;
                // Older results sit in hourly chunks: take as many of them as a page can use
                // and merge by time.
                let seq: Option<i64> = sqlx::query_scalar(sql::MONITOR_SEQ)
                    .bind(tenant.0)
                    .bind(monitor.0)
                    .fetch_optional(self.reader())
                    .await?;
                if let Some(seq) = seq {
                    let want = fetch_limit(page.limit) as usize;
                    let older = self
                        .chunked_results(seq, before.map(|b| (b, region.clone())), want)
                        .await?;
                    for (region, e) in older {
                        items.push(CheckResult {
                            monitor_id: monitor,
                            monitor_seq: seq,
                            tenant_id: tenant,
                            region,
                            checked_at: Timestamp::from_millis(e.checked_at),
                            status: e.status,
                            latency_us: e.latency_us,
                            reason: e.reason,
                            details: e
                                .details
                                .as_deref()
                                .map(|d| json_from_text(d, "result details"))
                                .transpose()?,
                        });
                    }
                    items.sort_by(|a, b| (b.checked_at, &b.region).cmp(&(a.checked_at, &a.region)));
                    items.dedup_by(|a, b| a.checked_at == b.checked_at && a.region == b.region);
                }
                Ok(into_page(items, page.limit, |r| {
                    format!("{}~{}", r.checked_at.as_millis(), r.region)
                }))
            }

            async fn prepare_result_storage(&self, now: Timestamp) -> Result<()> {
                self.prepare_partitions(now).await
            }

            async fn prune_results(&self, cutoff: Timestamp) -> Result<u64> {
                let rows = self.prune(cutoff).await?;
                Ok(rows + self.stats_prune(None, cutoff).await?)
            }

            async fn fold_results(
                &self,
                until: Timestamp,
                max_ms: i64,
                attribution: &dyn pingtower_core::stats::Attribution,
            ) -> Result<crate::FoldReport> {
                self.stats_fold(until, max_ms, attribution).await
            }

            async fn fold_watermark(&self) -> Result<Option<Timestamp>> {
                self.stats_watermark().await
            }

            async fn rollups(
                &self,
                seqs: &[i64],
                level: pingtower_core::stats::RollupLevel,
                from: i64,
                to: i64,
            ) -> Result<Vec<pingtower_core::stats::RollupRow>> {
                self.stats_rollups(seqs, level, from, to).await
            }

            async fn result_points(
                &self,
                seqs: &[i64],
                from: i64,
                to: i64,
            ) -> Result<Vec<pingtower_core::stats::ResultPoint>> {
                self.stats_points(seqs, from, to).await
            }

            async fn compact_results(&self, before: Timestamp) -> Result<u64> {
                let moved = self.stats_compact(before).await?;
                self.release_compacted(before).await?;
                Ok(moved)
            }

            async fn prune_rollups(
                &self,
                level: pingtower_core::stats::RollupLevel,
                cutoff: Timestamp,
            ) -> Result<u64> {
                self.stats_prune(Some(level), cutoff).await
            }

            async fn incidents_between(
                &self,
                tenant: TenantId,
                monitors: Option<&[MonitorId]>,
                from: Timestamp,
                to: Timestamp,
            ) -> Result<Vec<Incident>> {
                let mut out = Vec::new();
                let all = [None];
                let parts: Vec<Option<&[MonitorId]>> = match monitors {
                    None => all.to_vec(),
                    Some(ids) => ids
                        .chunks(crate::stats::ROWS_PER_STATEMENT)
                        .map(Some)
                        .collect(),
                };
                for part in parts {
                    let mut q = sqlx::QueryBuilder::<$db>::new(sql::incidents_between());
                    q.push_bind(tenant.0)
                        .push(" AND opened_at < ")
                        .push_bind(to.as_millis())
                        .push(" AND (resolved_at IS NULL OR resolved_at > ")
                        .push_bind(from.as_millis())
                        .push(")");
                    if let Some(ids) = part {
                        if ids.is_empty() {
                            continue;
                        }
                        q.push(" AND monitor_id IN (");
                        let mut list = q.separated(", ");
                        for id in ids {
                            list.push_bind(id.0);
                        }
                        list.push_unseparated(")");
                    }
                    q.push(" ORDER BY opened_at");
                    for r in q.build().fetch_all(self.reader()).await? {
                        out.push(incident_row(&r)?);
                    }
                }
                Ok(out)
            }

            async fn open_incident(
                &self,
                tenant: TenantId,
                monitor: MonitorId,
                transition: i64,
                reason: Option<&str>,
                at: Timestamp,
            ) -> Result<Option<Incident>> {
                let mut tx = self.writer().begin().await?;
                let row = sqlx::query(AssertSqlSafe(sql::insert_incident()))
                    .bind(IncidentId::new().0)
                    .bind(tenant.0)
                    .bind(monitor.0)
                    .bind(transition)
                    .bind(reason)
                    .bind(at.as_millis())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    let exists: i64 = sqlx::query_scalar(sql::MONITOR_EXISTS)
                        .bind(tenant.0)
                        .bind(monitor.0)
                        .fetch_one(&mut *tx)
                        .await?;
                    return if exists == 0 {
                        Err(StoreError::NotFound)
                    } else {
                        Ok(None)
                    };
                };
                let incident = incident_row(&row)?;
                let entry = event(
                    incident.id,
                    IncidentEventKind::Opened,
                    Some("system"),
                    reason,
                    at,
                );
                insert_event(&mut tx, &entry).await?;
                tx.commit().await?;
                Ok(Some(incident))
            }

            async fn get_incident(&self, tenant: TenantId, id: IncidentId) -> Result<Incident> {
                let row = sqlx::query(AssertSqlSafe(sql::get_incident()))
                    .bind(tenant.0)
                    .bind(id.0)
                    .fetch_one(self.reader())
                    .await?;
                incident_row(&row)
            }

            async fn list_incidents(
                &self,
                tenant: TenantId,
                filter: &IncidentFilter,
                page: &PageRequest,
            ) -> Result<Page<Incident>> {
                let rows = sqlx::query(AssertSqlSafe(sql::list_incidents()))
                    .bind(tenant.0)
                    .bind(filter.monitor_id.map(|m| m.0))
                    .bind(filter.status.map(IncidentStatus::as_str))
                    .bind(uuid_cursor(&page.cursor)?)
                    .bind(fetch_limit(page.limit))
                    .fetch_all(self.reader())
                    .await?;
                let items = rows.iter().map(incident_row).collect::<Result<Vec<_>>>()?;
                Ok(into_page(items, page.limit, |i| i.id.to_string()))
            }

            async fn acknowledge_incident(
                &self,
                tenant: TenantId,
                id: IncidentId,
                by: &str,
                at: Timestamp,
            ) -> Result<Incident> {
                let mut tx = self.writer().begin().await?;
                let row = sqlx::query(AssertSqlSafe(sql::acknowledge_incident()))
                    .bind(tenant.0)
                    .bind(id.0)
                    .bind(at.as_millis())
                    .bind(by)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    drop(tx);
                    let current = self.get_incident(tenant, id).await?;
                    return match current.status {
                        IncidentStatus::Acknowledged => Ok(current),
                        _ => Err(StoreError::Conflict("the incident is resolved".to_owned())),
                    };
                };
                let incident = incident_row(&row)?;
                let entry = event(
                    incident.id,
                    IncidentEventKind::Acknowledged,
                    Some(by),
                    None,
                    at,
                );
                insert_event(&mut tx, &entry).await?;
                tx.commit().await?;
                Ok(incident)
            }

            async fn resolve_incident(
                &self,
                tenant: TenantId,
                id: IncidentId,
                message: Option<&str>,
                at: Timestamp,
            ) -> Result<Option<Incident>> {
                let mut tx = self.writer().begin().await?;
                let row = sqlx::query(AssertSqlSafe(sql::resolve_incident()))
                    .bind(tenant.0)
                    .bind(id.0)
                    .bind(at.as_millis())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    drop(tx);
                    // Missing (NotFound) or already resolved (None).
                    self.get_incident(tenant, id).await?;
                    return Ok(None);
                };
                let incident = incident_row(&row)?;
                let entry = event(
                    incident.id,
                    IncidentEventKind::Resolved,
                    Some("system"),
                    message,
                    at,
                );
                insert_event(&mut tx, &entry).await?;
                tx.commit().await?;
                Ok(Some(incident))
            }

            async fn add_incident_event(
                &self,
                tenant: TenantId,
                id: IncidentId,
                kind: IncidentEventKind,
                actor: Option<&str>,
                message: Option<&str>,
                at: Timestamp,
            ) -> Result<IncidentEvent> {
                // Tenant check first: the event table has no tenant of its own.
                self.get_incident(tenant, id).await?;
                let entry = event(id, kind, actor, message, at);
                let mut conn = self.writer().acquire().await?;
                insert_event(&mut conn, &entry).await?;
                Ok(entry)
            }

            async fn incident_events(
                &self,
                tenant: TenantId,
                id: IncidentId,
            ) -> Result<Vec<IncidentEvent>> {
                let rows = sqlx::query(sql::INCIDENT_EVENTS)
                    .bind(tenant.0)
                    .bind(id.0)
                    .fetch_all(self.reader())
                    .await?;
                rows.iter().map(incident_event_row).collect()
            }

            async fn create_resource(
                &self,
                tenant: TenantId,
                r: &NewResource,
                now: Timestamp,
            ) -> Result<Resource> {
                let row = sqlx::query(AssertSqlSafe(sql::insert_resource()))
                    .bind(ResourceId::new().0)
                    .bind(tenant.0)
                    .bind(r.kind.as_str())
                    .bind(&r.name)
                    .bind(&r.slug)
                    .bind(to_json(&r.spec)?)
                    .bind(&r.secret)
                    .bind(now.as_millis())
                    .fetch_one(self.writer())
                    .await?;
                resource_row(&row)
            }

            async fn get_resource(
                &self,
                tenant: TenantId,
                kind: ResourceKind,
                id: ResourceId,
            ) -> Result<Resource> {
                let row = sqlx::query(AssertSqlSafe(sql::get_resource()))
                    .bind(tenant.0)
                    .bind(kind.as_str())
                    .bind(id.0)
                    .fetch_one(self.reader())
                    .await?;
                resource_row(&row)
            }

            async fn list_resources(
                &self,
                tenant: TenantId,
                kind: ResourceKind,
            ) -> Result<Vec<Resource>> {
                let rows = sqlx::query(AssertSqlSafe(sql::list_resources()))
                    .bind(tenant.0)
                    .bind(kind.as_str())
                    .fetch_all(self.reader())
                    .await?;
                rows.iter().map(resource_row).collect()
            }

            async fn update_resource(
                &self,
                tenant: TenantId,
                id: ResourceId,
                expected_version: Option<i64>,
                r: &NewResource,
                now: Timestamp,
            ) -> Result<Resource> {
                let row = sqlx::query(AssertSqlSafe(sql::update_resource()))
                    .bind(tenant.0)
                    .bind(id.0)
                    .bind(expected_version)
                    .bind(&r.name)
                    .bind(&r.slug)
                    .bind(to_json(&r.spec)?)
                    .bind(&r.secret)
                    .bind(now.as_millis())
                    .bind(r.kind.as_str())
                    .fetch_optional(self.writer())
                    .await?;
                match row {
                    Some(row) => resource_row(&row),
                    None => Err(self
                        .version_error(
                            sql::RESOURCE_VERSION,
                            VersionArgs(tenant.0, id.0, Some(r.kind.as_str())),
                        )
                        .await),
                }
            }

            async fn delete_resource(
                &self,
                tenant: TenantId,
                kind: ResourceKind,
                id: ResourceId,
            ) -> Result<()> {
                let done = sqlx::query(sql::DELETE_RESOURCE)
                    .bind(tenant.0)
                    .bind(kind.as_str())
                    .bind(id.0)
                    .execute(self.writer())
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn find_status_page(&self, slug: &str) -> Result<Option<Resource>> {
                let row = sqlx::query(AssertSqlSafe(sql::find_status_page()))
                    .bind(slug)
                    .fetch_optional(self.reader())
                    .await?;
                row.as_ref().map(resource_row).transpose()
            }

            async fn record_delivery(&self, d: &Delivery) -> Result<bool> {
                let done = sqlx::query(sql::INSERT_DELIVERY)
                    .bind(d.id.0)
                    .bind(d.tenant_id.0)
                    .bind(d.channel_id.0)
                    .bind(d.incident_id.map(|i| i.0))
                    .bind(&d.idempotency_key)
                    .bind(d.status.as_str())
                    .bind(d.attempts)
                    .bind(&d.last_error)
                    .bind(&d.response)
                    .bind(d.latency_ms)
                    .bind(d.created_at.as_millis())
                    .bind(d.updated_at.as_millis())
                    .execute(self.writer())
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn update_delivery(
                &self,
                tenant: TenantId,
                id: DeliveryId,
                u: &DeliveryUpdate,
                now: Timestamp,
            ) -> Result<Delivery> {
                let row = sqlx::query(AssertSqlSafe(sql::update_delivery()))
                    .bind(tenant.0)
                    .bind(id.0)
                    .bind(u.status.as_str())
                    .bind(u.attempts)
                    .bind(&u.last_error)
                    .bind(&u.response)
                    .bind(u.latency_ms)
                    .bind(now.as_millis())
                    .fetch_one(self.writer())
                    .await?;
                delivery_row(&row)
            }

            async fn find_delivery_by_key(
                &self,
                tenant: TenantId,
                key: &str,
            ) -> Result<Option<Delivery>> {
                let row = sqlx::query(AssertSqlSafe(sql::find_delivery_by_key()))
                    .bind(tenant.0)
                    .bind(key)
                    .fetch_optional(self.reader())
                    .await?;
                row.as_ref().map(delivery_row).transpose()
            }

            async fn list_deliveries(
                &self,
                tenant: TenantId,
                page: &PageRequest,
            ) -> Result<Page<Delivery>> {
                let rows = sqlx::query(AssertSqlSafe(sql::list_deliveries()))
                    .bind(tenant.0)
                    .bind(uuid_cursor(&page.cursor)?)
                    .bind(fetch_limit(page.limit))
                    .fetch_all(self.reader())
                    .await?;
                let items = rows.iter().map(delivery_row).collect::<Result<Vec<_>>>()?;
                Ok(into_page(items, page.limit, |d| d.id.to_string()))
            }

            async fn append_audit(&self, e: &AuditEntry) -> Result<()> {
                sqlx::query(sql::INSERT_AUDIT)
                    .bind(e.id.0)
                    .bind(e.tenant_id.0)
                    .bind(&e.actor)
                    .bind(&e.action)
                    .bind(&e.target)
                    .bind(&e.detail)
                    .bind(e.at.as_millis())
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            async fn list_audit(
                &self,
                tenant: TenantId,
                page: &PageRequest,
            ) -> Result<Page<AuditEntry>> {
                let rows = sqlx::query(sql::LIST_AUDIT)
                    .bind(tenant.0)
                    .bind(uuid_cursor(&page.cursor)?)
                    .bind(fetch_limit(page.limit))
                    .fetch_all(self.reader())
                    .await?;
                let items = rows.iter().map(audit_row).collect::<Result<Vec<_>>>()?;
                Ok(into_page(items, page.limit, |a| a.id.to_string()))
            }
        }
    };
}

pub(crate) use store_impl;
