//! The cases. Each takes a [`Harness`] and must pass on every backend.

use crate::harness::Harness;
use pingtower_core::*;
use pingtower_store::{
    DeliveryUpdate, IncidentFilter, MonitorFilter, MonitorOrder, NewUser, PageRequest, Store,
    StoreError,
};
use serde_json::json;
use std::sync::Arc;

const T0: i64 = 1_795_000_000_000; // 2026-11-18T11:06:40Z

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn now() -> Timestamp {
    Timestamp::from_datetime(chrono::Utc::now())
}

fn http_monitor(name: &str) -> NewMonitor {
    let mut settings = serde_json::Map::new();
    settings.insert("url".into(), json!("http://127.0.0.1:9000/health"));
    NewMonitor {
        name: name.to_owned(),
        kind: MonitorKind::Http,
        settings,
        interval_ms: 30_000,
        timeout_ms: 10_000,
        down_after: 1,
        up_after: 1,
        tags: vec!["prod".into()],
        enabled: true,
        push_token: None,
    }
}

fn result(m: &Monitor, ms: i64, status: CheckStatus) -> CheckResult {
    CheckResult {
        monitor_id: m.id,
        monitor_seq: m.seq,
        tenant_id: m.tenant_id,
        region: "default".into(),
        checked_at: at(ms),
        status,
        latency_us: 1_234,
        reason: (status != CheckStatus::Up).then(|| "connection refused".to_owned()),
        details: None,
    }
}

async fn tenant(s: &Arc<dyn Store>, name: &str) -> TenantId {
    s.create_tenant(name, at(T0)).await.unwrap().id
}

fn channel(name: &str) -> NewResource {
    NewResource {
        kind: ResourceKind::Channel,
        name: name.to_owned(),
        slug: None,
        spec: json!({"kind": "webhook", "url": "http://127.0.0.1:9001/hook"}),
        secret: Some(vec![1, 2, 3]),
    }
}

fn status_page(name: &str, slug: &str) -> NewResource {
    NewResource {
        kind: ResourceKind::StatusPage,
        name: name.to_owned(),
        slug: Some(slug.to_owned()),
        spec: json!({"monitors": []}),
        secret: None,
    }
}

pub async fn reopening_keeps_data_and_migrations_are_idempotent(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let m = s
        .create_monitor(t, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    s.insert_results(&[result(&m, T0, CheckStatus::Up)])
        .await
        .unwrap();
    s.close().await;

    let s = h.open().await;
    assert_eq!(s.get_monitor(t, m.id).await.unwrap(), m);
    let page = s
        .list_results(t, m.id, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    s.ping().await.unwrap();
    s.close().await;
}

pub async fn tenants_lifecycle(h: Harness) {
    let s = h.open().await;
    let a = s.create_tenant("acme", at(T0)).await.unwrap();
    let b = s.create_tenant("globex", at(T0 + 1)).await.unwrap();
    assert_eq!(s.get_tenant(a.id).await.unwrap(), a);
    let all = s.list_tenants().await.unwrap();
    assert_eq!(all, vec![a.clone(), b.clone()]);
    s.delete_tenant(a.id).await.unwrap();
    assert!(matches!(
        s.get_tenant(a.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete_tenant(a.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.list_tenants().await.unwrap(), vec![b]);
}

pub async fn users_and_memberships(h: Harness) {
    let s = h.open().await;
    assert_eq!(s.count_users().await.unwrap(), 0);
    let new = NewUser {
        email: "Ops@Example.test".into(),
        display_name: Some("Ops".into()),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        platform_admin: true,
    };
    let u = s.create_user(&new, at(T0)).await.unwrap();
    assert_eq!(u.email, "ops@example.test", "emails are stored normalised");
    assert_eq!(s.get_user(u.id).await.unwrap(), u);
    assert_eq!(
        s.find_user_by_email("OPS@example.test").await.unwrap(),
        Some(u.clone())
    );
    assert_eq!(
        s.find_user_by_email("nobody@example.test").await.unwrap(),
        None
    );
    let dup = NewUser {
        email: "ops@EXAMPLE.test".into(),
        ..new.clone()
    };
    assert!(matches!(
        s.create_user(&dup, at(T0)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.count_users().await.unwrap(), 1);

    let t1 = tenant(&s, "one").await;
    let t2 = tenant(&s, "two").await;
    s.set_membership(t1, u.id, Role::Owner, at(T0))
        .await
        .unwrap();
    s.set_membership(t2, u.id, Role::Viewer, at(T0))
        .await
        .unwrap();
    let changed = s
        .set_membership(t2, u.id, Role::Editor, at(T0 + 5))
        .await
        .unwrap();
    assert_eq!(changed.role, Role::Editor);
    let mut roles: Vec<_> = s
        .memberships_of_user(u.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.tenant_id, m.role))
        .collect();
    roles.sort_by_key(|(t, _)| *t);
    let mut expected = vec![(t1, Role::Owner), (t2, Role::Editor)];
    expected.sort_by_key(|(t, _)| *t);
    assert_eq!(roles, expected);
    assert_eq!(s.members_of_tenant(t1).await.unwrap().len(), 1);
    // A tenant that has an owner keeps one: neither removing nor demoting the last one.
    assert!(matches!(
        s.remove_membership(t1, u.id).await,
        Err(StoreError::LastOwner)
    ));
    assert!(matches!(
        s.set_membership(t1, u.id, Role::Admin, at(T0)).await,
        Err(StoreError::LastOwner)
    ));
    let other = s
        .create_user(
            &NewUser {
                email: "second@example.test".into(),
                ..new.clone()
            },
            at(T0),
        )
        .await
        .unwrap();
    s.set_membership(t1, other.id, Role::Owner, at(T0))
        .await
        .unwrap();
    s.remove_membership(t1, u.id).await.unwrap();
    // `other` is the last owner now.
    assert!(matches!(
        s.remove_membership(t1, other.id).await,
        Err(StoreError::LastOwner)
    ));
    assert_eq!(s.members_of_tenant(t1).await.unwrap().len(), 1);
    // A tenant without owners (a platform admin made it without one) takes other members.
    let t3 = tenant(&s, "three").await;
    s.set_membership(t3, u.id, Role::Viewer, at(T0))
        .await
        .unwrap();
    s.remove_membership(t3, u.id).await.unwrap();
    assert!(s.members_of_tenant(t3).await.unwrap().is_empty());
    assert!(matches!(
        s.remove_membership(t1, u.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.set_membership(t1, UserId::new(), Role::Viewer, at(T0))
            .await,
        Err(StoreError::NotFound)
    ));
}

pub async fn api_keys_lifecycle(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let other = tenant(&s, "globex").await;
    let key = ApiKey {
        id: ApiKeyId::new(),
        tenant_id: t,
        name: "ci".into(),
        role: Role::Viewer,
        prefix: "ptk_abc123".into(),
        secret_hash: vec![7; 32],
        created_by: None,
        created_at: at(T0),
        expires_at: Some(at(T0 + 86_400_000)),
        last_used_at: None,
        revoked_at: None,
    };
    s.create_api_key(&key).await.unwrap();
    assert_eq!(
        s.find_api_key_by_prefix("ptk_abc123").await.unwrap(),
        Some(key.clone())
    );
    assert_eq!(s.find_api_key_by_prefix("ptk_nope").await.unwrap(), None);
    let dup = ApiKey {
        id: ApiKeyId::new(),
        ..key.clone()
    };
    assert!(matches!(
        s.create_api_key(&dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.list_api_keys(t).await.unwrap(), vec![key.clone()]);
    assert!(s.list_api_keys(other).await.unwrap().is_empty());

    s.touch_api_key(key.id, at(T0 + 10)).await.unwrap();
    assert!(matches!(
        s.revoke_api_key(other, key.id, at(T0 + 20)).await,
        Err(StoreError::NotFound)
    ));
    s.revoke_api_key(t, key.id, at(T0 + 20)).await.unwrap();
    let stored = s
        .find_api_key_by_prefix("ptk_abc123")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.last_used_at, Some(at(T0 + 10)));
    assert_eq!(stored.revoked_at, Some(at(T0 + 20)));
    assert!(!stored.is_usable(at(T0 + 30)));
    // Revoking again keeps the first revocation time.
    s.revoke_api_key(t, key.id, at(T0 + 40)).await.unwrap();
    let stored = s
        .find_api_key_by_prefix("ptk_abc123")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.revoked_at, Some(at(T0 + 20)));
}

pub async fn monitor_crud_and_optimistic_concurrency(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let m = s
        .create_monitor(t, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    assert_eq!(m.status, MonitorStatus::Pending);
    assert_eq!(m.version, 1);
    assert_eq!(m.settings["url"], json!("http://127.0.0.1:9000/health"));
    assert_eq!(s.get_monitor(t, m.id).await.unwrap(), m);

    let m2 = s
        .create_monitor(t, &http_monitor("web"), at(T0))
        .await
        .unwrap();
    assert!(m2.seq > m.seq, "seq grows");
    assert!(matches!(
        s.create_monitor(t, &http_monitor("api"), at(T0)).await,
        Err(StoreError::Conflict(_))
    ));

    let mut changed = http_monitor("api v2");
    changed.interval_ms = 60_000;
    changed.tags = vec!["prod".into(), "eu".into()];
    let updated = s
        .update_monitor(t, m.id, Some(1), &changed, at(T0 + 1))
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.name, "api v2");
    assert_eq!(updated.interval_ms, 60_000);
    assert_eq!(updated.tags, vec!["prod".to_owned(), "eu".to_owned()]);
    assert_eq!(updated.seq, m.seq, "seq never changes");
    assert_eq!(updated.created_at, m.created_at);
    assert_eq!(updated.updated_at, at(T0 + 1));

    // A stale version is refused and changes nothing.
    let stale = s
        .update_monitor(t, m.id, Some(1), &http_monitor("lost"), at(T0 + 2))
        .await;
    assert!(
        matches!(stale, Err(StoreError::VersionMismatch { current: 2 })),
        "{stale:?}"
    );
    assert_eq!(s.get_monitor(t, m.id).await.unwrap().name, "api v2");
    // Without a version the update applies (scripts that do not send If-Match).
    let mut paused = changed.clone();
    paused.enabled = false;
    let p = s
        .update_monitor(t, m.id, None, &paused, at(T0 + 3))
        .await
        .unwrap();
    assert_eq!((p.version, p.status), (3, MonitorStatus::Paused));
    let resumed = s
        .update_monitor(t, m.id, None, &changed, at(T0 + 4))
        .await
        .unwrap();
    assert_eq!(resumed.status, MonitorStatus::Pending);

    s.set_monitor_status(t, m.id, MonitorStatus::Down, at(T0 + 5))
        .await
        .unwrap();
    let down = s.get_monitor(t, m.id).await.unwrap();
    assert_eq!((down.status, down.version), (MonitorStatus::Down, 4));

    // Renaming onto another monitor's name conflicts.
    let clash = s
        .update_monitor(t, m.id, None, &http_monitor("web"), at(T0 + 6))
        .await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");

    let missing = MonitorId::new();
    assert!(matches!(
        s.update_monitor(t, missing, None, &changed, at(T0)).await,
        Err(StoreError::NotFound)
    ));
    s.delete_monitor(t, m.id).await.unwrap();
    assert!(matches!(
        s.get_monitor(t, m.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete_monitor(t, m.id).await,
        Err(StoreError::NotFound)
    ));
    // A new monitor never reuses a deleted monitor's seq (its old results must not leak in).
    let m3 = s
        .create_monitor(t, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    assert!(m3.seq > m2.seq);
    // A monitor for a tenant that does not exist is refused.
    assert!(
        s.create_monitor(TenantId::new(), &http_monitor("x"), at(T0))
            .await
            .is_err()
    );
}

pub async fn monitor_list_filters_and_pagination(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let mut m = http_monitor(&format!("svc-{i:02}"));
        m.tags = if i % 2 == 0 {
            vec!["even".into()]
        } else {
            vec!["odd_1%".into()]
        };
        ids.push(s.create_monitor(t, &m, at(T0 + i)).await.unwrap().id);
    }
    s.set_monitor_status(t, ids[3], MonitorStatus::Down, at(T0))
        .await
        .unwrap();
    // Counts by status are the tenant's own.
    let other = tenant(&s, "other").await;
    s.create_monitor(other, &http_monitor("elsewhere"), at(T0))
        .await
        .unwrap();
    let mut counts = s.count_monitors(t).await.unwrap();
    counts.sort_by_key(|(st, _)| st.as_str());
    assert_eq!(
        counts,
        vec![(MonitorStatus::Down, 1), (MonitorStatus::Pending, 24)]
    );

    // Pages of 10 cover all 25, newest first, without repeats.
    let mut seen = Vec::new();
    let mut page = PageRequest::first(10);
    loop {
        let got = s
            .list_monitors(t, &MonitorFilter::default(), &page)
            .await
            .unwrap();
        assert!(got.items.len() <= 10);
        seen.extend(got.items.iter().map(|m| m.id));
        match got.next_cursor {
            Some(c) => page.cursor = Some(c.0),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    let all = PageRequest::first(100);
    let by_tag = MonitorFilter {
        tag: Some("odd_1%".into()),
        ..Default::default()
    };
    assert_eq!(
        s.list_monitors(t, &by_tag, &all).await.unwrap().items.len(),
        12
    );
    // Wildcards in a tag are literal: `odd` alone is not a tag of any monitor.
    let partial = MonitorFilter {
        tag: Some("odd".into()),
        ..Default::default()
    };
    assert!(
        s.list_monitors(t, &partial, &all)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let down = MonitorFilter {
        status: Some(MonitorStatus::Down),
        ..Default::default()
    };
    let got = s.list_monitors(t, &down, &all).await.unwrap();
    assert_eq!(
        got.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[3]]
    );
    let search = MonitorFilter {
        search: Some("SVC-1".into()),
        ..Default::default()
    };
    assert_eq!(
        s.list_monitors(t, &search, &all).await.unwrap().items.len(),
        10
    );
    let bad = PageRequest {
        limit: 10,
        cursor: Some("not-a-cursor".into()),
    };
    assert!(matches!(
        s.list_monitors(t, &MonitorFilter::default(), &bad).await,
        Err(StoreError::InvalidInput(_))
    ));

    // What needs attention first: down, degraded, pending, maintenance, up, paused; by name
    // within each; pages of 4 go across the ranks without repeats or gaps.
    for (i, status) in [
        (20, MonitorStatus::Degraded),
        (7, MonitorStatus::Up),
        (1, MonitorStatus::Up),
        (9, MonitorStatus::Paused),
        (2, MonitorStatus::Maintenance),
        (24, MonitorStatus::Down),
    ] {
        s.set_monitor_status(t, ids[i], status, at(T0))
            .await
            .unwrap();
    }
    let attention = MonitorFilter {
        order: MonitorOrder::Attention,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut page = PageRequest::first(4);
    loop {
        let got = s.list_monitors(t, &attention, &page).await.unwrap();
        assert!(got.items.len() <= 4);
        seen.extend(got.items.iter().map(|m| m.id));
        match got.next_cursor {
            Some(c) => page.cursor = Some(c.0),
            None => break,
        }
    }
    let pending = (0..25).filter(|i| ![3, 24, 20, 2, 1, 7, 9].contains(i));
    let expected: Vec<_> = [3, 24, 20]
        .into_iter()
        .chain(pending)
        .chain([2, 1, 7, 9])
        .map(|i| ids[i])
        .collect();
    assert_eq!(seen, expected);
    // With the other filters.
    let down_tagged = MonitorFilter {
        tag: Some("even".into()),
        order: MonitorOrder::Attention,
        ..Default::default()
    };
    let got = s.list_monitors(t, &down_tagged, &all).await.unwrap();
    assert_eq!(got.items[0].id, ids[24]);
    assert_eq!(got.items.len(), 13);
    for bad in ["7~svc", "x~svc", "svc-01", ids[0].to_string().as_str()] {
        let page = PageRequest {
            limit: 10,
            cursor: Some(bad.into()),
        };
        assert!(
            matches!(
                s.list_monitors(t, &attention, &page).await,
                Err(StoreError::InvalidInput(_))
            ),
            "{bad}"
        );
    }
}

pub async fn monitor_global_lookups(h: Harness) {
    let s = h.open().await;
    let a = tenant(&s, "acme").await;
    let b = tenant(&s, "globex").await;
    let mut hb = http_monitor("cron");
    hb.kind = MonitorKind::Heartbeat;
    hb.push_token = Some("tok_secret_1".into());
    let m = s.create_monitor(a, &hb, at(T0)).await.unwrap();
    s.create_monitor(b, &http_monitor("web"), at(T0))
        .await
        .unwrap();
    assert_eq!(
        s.find_monitor_by_push_token("tok_secret_1").await.unwrap(),
        Some(m.clone())
    );
    assert_eq!(
        s.find_monitor_by_push_token("tok_other").await.unwrap(),
        None
    );
    let mut clash = http_monitor("cron 2");
    clash.push_token = Some("tok_secret_1".into());
    assert!(matches!(
        s.create_monitor(b, &clash, at(T0)).await,
        Err(StoreError::Conflict(_))
    ));
    let all = s.all_monitors().await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
}

pub async fn results_are_batched_idempotent_and_paginated(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let m = s
        .create_monitor(t, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    let other = s
        .create_monitor(t, &http_monitor("web"), at(T0))
        .await
        .unwrap();
    let base = now().as_millis() - 3_600_000;
    let mut batch: Vec<_> = (0..120)
        .map(|i| {
            let status = if i % 10 == 0 {
                CheckStatus::Down
            } else {
                CheckStatus::Up
            };
            result(&m, base + i * 30_000, status)
        })
        .collect();
    batch[5].details = Some(json!({"timings": {"connect_us": 120, "ttfb_us": 900}}));
    let mut eu = result(&m, base, CheckStatus::Degraded);
    eu.region = "eu".into();
    batch.push(eu);
    batch.push(result(&other, base, CheckStatus::Up));
    assert_eq!(s.insert_results(&batch).await.unwrap(), 122);
    assert_eq!(
        s.insert_results(&batch).await.unwrap(),
        0,
        "a repeated batch writes nothing"
    );
    assert_eq!(s.insert_results(&[]).await.unwrap(), 0);

    let mut seen = Vec::new();
    let mut page = PageRequest::first(50);
    loop {
        let got = s.list_results(t, m.id, &page).await.unwrap();
        seen.extend(got.items);
        match got.next_cursor {
            Some(c) => page.cursor = Some(c.0),
            None => break,
        }
    }
    assert_eq!(seen.len(), 121);
    assert!(
        seen.windows(2).all(|w| w[0].checked_at >= w[1].checked_at),
        "newest first"
    );
    assert!(
        seen.iter()
            .all(|r| r.monitor_id == m.id && r.tenant_id == t)
    );
    let with_details = seen
        .iter()
        .find(|r| r.checked_at == at(base + 5 * 30_000))
        .unwrap();
    assert_eq!(with_details.details, batch[5].details);
    let down = seen
        .iter()
        .find(|r| r.checked_at == at(base + 10 * 30_000))
        .unwrap();
    assert_eq!(down.status, CheckStatus::Down);
    assert_eq!(down.reason.as_deref(), Some("connection refused"));
    assert_eq!(down.latency_us, 1_234);
    let regions: Vec<_> = seen
        .iter()
        .filter(|r| r.checked_at == at(base))
        .map(|r| r.region.as_str())
        .collect();
    assert_eq!(regions, ["eu", "default"]);
}

pub async fn results_are_pruned_by_age(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let m = s
        .create_monitor(t, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    let now_ms = now().as_millis();
    let day = 86_400_000;
    // Storage prepared for a time 20 days ago too (as a server running then would have).
    s.prepare_result_storage(at(now_ms - 20 * day))
        .await
        .unwrap();
    s.prepare_result_storage(at(now_ms)).await.unwrap();
    let mut batch = Vec::new();
    for d in 0..30 {
        for k in 0..4 {
            batch.push(result(&m, now_ms - d * day - k * 60_000, CheckStatus::Up));
        }
    }
    assert_eq!(s.insert_results(&batch).await.unwrap(), 120);
    let cutoff = now_ms - 14 * day;
    s.prune_results(at(cutoff)).await.unwrap();
    let left = s
        .list_results(t, m.id, &PageRequest::first(1000))
        .await
        .unwrap()
        .items;
    let expected = batch
        .iter()
        .filter(|r| r.checked_at.as_millis() >= cutoff)
        .count();
    assert_eq!(left.len(), expected);
    assert!(left.iter().all(|r| r.checked_at.as_millis() >= cutoff));
    // Writes after a prune still land, at any time.
    assert_eq!(
        s.insert_results(&[result(&m, now_ms + 1, CheckStatus::Up)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.prune_results(at(cutoff)).await.unwrap(),
        0,
        "nothing left to prune"
    );
}

pub async fn concurrent_result_batches_all_land(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let m = s
        .create_monitor(t, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    let base = now().as_millis() - 600_000;
    let mut tasks = Vec::new();
    for w in 0..8i64 {
        let s = s.clone();
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            for b in 0..5i64 {
                let batch: Vec<_> = (0..20i64)
                    .map(|i| result(&m, base + w * 10_000 + b * 100 + i, CheckStatus::Up))
                    .collect();
                s.insert_results(&batch).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let got = s
        .list_results(t, m.id, &PageRequest::first(1000))
        .await
        .unwrap();
    assert_eq!(got.items.len(), 8 * 5 * 20);
}

pub async fn incidents_open_once_per_transition(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let m = s
        .create_monitor(t, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    let first = s
        .open_incident(t, m.id, 1, Some("HTTP 503"), at(T0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.status, IncidentStatus::Open);
    assert_eq!(first.reason.as_deref(), Some("HTTP 503"));
    assert_eq!(first.resolved_at, None);
    // The same transition again (a redelivered result) opens nothing.
    assert_eq!(
        s.open_incident(t, m.id, 1, Some("HTTP 503"), at(T0 + 5))
            .await
            .unwrap(),
        None
    );
    let second = s
        .open_incident(t, m.id, 3, None, at(T0 + 10))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(first.id, second.id);
    assert!(matches!(
        s.open_incident(t, MonitorId::new(), 1, None, at(T0)).await,
        Err(StoreError::NotFound)
    ));
    let events = s.incident_events(t, first.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, IncidentEventKind::Opened);
    assert_eq!(events[0].message.as_deref(), Some("HTTP 503"));

    let all = s
        .list_incidents(t, &IncidentFilter::default(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(
        all.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![second.id, first.id]
    );
    let by_monitor = IncidentFilter {
        monitor_id: Some(m.id),
        status: Some(IncidentStatus::Open),
    };
    assert_eq!(
        s.list_incidents(t, &by_monitor, &PageRequest::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let page = s
        .list_incidents(t, &IncidentFilter::default(), &PageRequest::first(1))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let rest = PageRequest {
        limit: 5,
        cursor: page.next_cursor.map(|c| c.0),
    };
    let page2 = s
        .list_incidents(t, &IncidentFilter::default(), &rest)
        .await
        .unwrap();
    assert_eq!(
        page2.items.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![first.id]
    );
}

pub async fn incident_acknowledge_and_resolve(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let m = s
        .create_monitor(t, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    let i = s
        .open_incident(t, m.id, 1, Some("timeout"), at(T0))
        .await
        .unwrap()
        .unwrap();
    let acked = s
        .acknowledge_incident(t, i.id, "ops@example.test", at(T0 + 60_000))
        .await
        .unwrap();
    assert_eq!(acked.status, IncidentStatus::Acknowledged);
    assert_eq!(acked.acknowledged_by.as_deref(), Some("ops@example.test"));
    // Acknowledging twice keeps the first acknowledgement.
    let again = s
        .acknowledge_incident(t, i.id, "other@example.test", at(T0 + 70_000))
        .await
        .unwrap();
    assert_eq!(again.acknowledged_by.as_deref(), Some("ops@example.test"));
    s.add_incident_event(
        t,
        i.id,
        IncidentEventKind::Comment,
        Some("ops@example.test"),
        Some("looking"),
        at(T0 + 80_000),
    )
    .await
    .unwrap();
    let resolved = s
        .resolve_incident(t, i.id, Some("recovered"), at(T0 + 120_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.status, IncidentStatus::Resolved);
    assert_eq!(resolved.resolved_at, Some(at(T0 + 120_000)));
    assert_eq!(
        s.resolve_incident(t, i.id, None, at(T0 + 130_000))
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        s.acknowledge_incident(t, i.id, "late@example.test", at(T0 + 140_000))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let kinds: Vec<_> = s
        .incident_events(t, i.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            IncidentEventKind::Opened,
            IncidentEventKind::Acknowledged,
            IncidentEventKind::Comment,
            IncidentEventKind::Resolved
        ]
    );
    assert!(matches!(
        s.resolve_incident(t, IncidentId::new(), None, at(T0)).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn resources_lifecycle(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let other = tenant(&s, "globex").await;
    let c = s.create_resource(t, &channel("ops"), at(T0)).await.unwrap();
    assert_eq!((c.version, c.kind), (1, ResourceKind::Channel));
    assert_eq!(c.secret.as_deref(), Some(&[1u8, 2, 3][..]));
    assert_eq!(
        s.get_resource(t, ResourceKind::Channel, c.id)
            .await
            .unwrap(),
        c
    );
    assert!(matches!(
        s.get_resource(t, ResourceKind::Rule, c.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.create_resource(t, &channel("ops"), at(T0)).await,
        Err(StoreError::Conflict(_))
    ));
    // The same name in another kind or another tenant is fine.
    let rule = NewResource {
        kind: ResourceKind::Rule,
        ..channel("ops")
    };
    s.create_resource(t, &rule, at(T0)).await.unwrap();
    s.create_resource(other, &channel("ops"), at(T0))
        .await
        .unwrap();

    let page = s
        .create_resource(t, &status_page("Public", "public"), at(T0))
        .await
        .unwrap();
    assert!(matches!(
        s.create_resource(other, &status_page("Theirs", "public"), at(T0))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.find_status_page("public").await.unwrap(),
        Some(page.clone())
    );
    assert_eq!(s.find_status_page("nope").await.unwrap(), None);

    let mut changed = channel("ops-renamed");
    changed.spec = json!({"kind": "webhook", "url": "http://127.0.0.1:9002/"});
    changed.secret = None;
    let u = s
        .update_resource(t, c.id, Some(1), &changed, at(T0 + 1))
        .await
        .unwrap();
    assert_eq!(
        (u.version, u.name.as_str(), u.secret.clone()),
        (2, "ops-renamed", None)
    );
    assert_eq!(u.spec["url"], json!("http://127.0.0.1:9002/"));
    assert!(matches!(
        s.update_resource(t, c.id, Some(1), &changed, at(T0 + 2))
            .await,
        Err(StoreError::VersionMismatch { current: 2 })
    ));
    let wrong_kind = NewResource {
        kind: ResourceKind::Rule,
        ..changed.clone()
    };
    assert!(matches!(
        s.update_resource(t, c.id, None, &wrong_kind, at(T0 + 2))
            .await,
        Err(StoreError::NotFound)
    ));
    let channels = s.list_resources(t, ResourceKind::Channel).await.unwrap();
    assert_eq!(channels, vec![u]);
    s.delete_resource(t, ResourceKind::Channel, c.id)
        .await
        .unwrap();
    assert!(
        s.list_resources(t, ResourceKind::Channel)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        s.delete_resource(t, ResourceKind::Channel, c.id).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn deliveries_are_idempotent(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let c = s.create_resource(t, &channel("ops"), at(T0)).await.unwrap();
    let d = Delivery {
        id: DeliveryId::new(),
        tenant_id: t,
        channel_id: c.id,
        incident_id: None,
        idempotency_key: "monitor-1:transition-1:channel-1".into(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        last_error: None,
        response: None,
        latency_ms: None,
        created_at: at(T0),
        updated_at: at(T0),
    };
    assert!(s.record_delivery(&d).await.unwrap());
    let dup = Delivery {
        id: DeliveryId::new(),
        ..d.clone()
    };
    assert!(
        !s.record_delivery(&dup).await.unwrap(),
        "the same key twice is refused"
    );
    let update = DeliveryUpdate {
        status: DeliveryStatus::Sent,
        attempts: 2,
        last_error: Some("HTTP 502 on attempt 1".into()),
        response: Some("HTTP 200".into()),
        latency_ms: Some(42),
    };
    let sent = s
        .update_delivery(t, d.id, &update, at(T0 + 5))
        .await
        .unwrap();
    assert_eq!(
        (sent.status, sent.attempts, sent.latency_ms),
        (DeliveryStatus::Sent, 2, Some(42))
    );
    let listed = s.list_deliveries(t, &PageRequest::default()).await.unwrap();
    assert_eq!(listed.items, vec![sent.clone()]);
    let found = s.find_delivery_by_key(t, &d.idempotency_key).await.unwrap();
    assert_eq!(found, Some(sent));
    assert_eq!(
        s.find_delivery_by_key(t, "no-such-key").await.unwrap(),
        None
    );
    let other = tenant(&s, "globex").await;
    assert_eq!(
        s.find_delivery_by_key(other, &d.idempotency_key)
            .await
            .unwrap(),
        None,
        "another tenant's delivery is not found"
    );
    assert!(matches!(
        s.update_delivery(other, d.id, &update, at(T0 + 6)).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn audit_log_is_scoped_and_newest_first(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let other = tenant(&s, "globex").await;
    for i in 0..3 {
        s.append_audit(&AuditEntry {
            id: AuditId::new(),
            tenant_id: t,
            actor: "ops@example.test".into(),
            action: "monitor.update".into(),
            target: format!("monitor/{i}"),
            detail: None,
            at: at(T0 + i),
        })
        .await
        .unwrap();
    }
    let got = s.list_audit(t, &PageRequest::first(2)).await.unwrap();
    assert_eq!(
        got.items
            .iter()
            .map(|e| e.target.as_str())
            .collect::<Vec<_>>(),
        ["monitor/2", "monitor/1"]
    );
    let rest = s
        .list_audit(
            t,
            &PageRequest {
                limit: 2,
                cursor: got.next_cursor.map(|c| c.0),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next_cursor.is_none());
    assert!(
        s.list_audit(other, &PageRequest::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

/// Another tenant's ids behave exactly like ids that do not exist.
pub async fn nothing_crosses_tenants(h: Harness) {
    let s = h.open().await;
    let a = tenant(&s, "acme").await;
    let b = tenant(&s, "globex").await;
    let m = s
        .create_monitor(a, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    s.insert_results(&[result(&m, now().as_millis(), CheckStatus::Down)])
        .await
        .unwrap();
    let i = s
        .open_incident(a, m.id, 1, None, at(T0))
        .await
        .unwrap()
        .unwrap();
    let c = s.create_resource(a, &channel("ops"), at(T0)).await.unwrap();

    assert!(matches!(
        s.get_monitor(b, m.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.update_monitor(b, m.id, None, &http_monitor("x"), at(T0))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.set_monitor_status(b, m.id, MonitorStatus::Up, at(T0))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete_monitor(b, m.id).await,
        Err(StoreError::NotFound)
    ));
    let page = PageRequest::default();
    assert!(
        s.list_monitors(b, &MonitorFilter::default(), &page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        s.list_results(b, m.id, &page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(matches!(
        s.open_incident(b, m.id, 2, None, at(T0)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.get_incident(b, i.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.acknowledge_incident(b, i.id, "x", at(T0)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.resolve_incident(b, i.id, None, at(T0)).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.add_incident_event(b, i.id, IncidentEventKind::Comment, None, Some("x"), at(T0))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(s.incident_events(b, i.id).await.unwrap().is_empty());
    assert!(
        s.list_incidents(b, &IncidentFilter::default(), &page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(matches!(
        s.get_resource(b, ResourceKind::Channel, c.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.update_resource(b, c.id, None, &channel("x"), at(T0))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete_resource(b, ResourceKind::Channel, c.id).await,
        Err(StoreError::NotFound)
    ));
    // And A's data is untouched by all of that.
    let still = s.get_monitor(a, m.id).await.unwrap();
    assert_eq!(
        (still.name.as_str(), still.version, still.status),
        ("api", 1, MonitorStatus::Pending)
    );
    assert_eq!(
        s.get_incident(a, i.id).await.unwrap().status,
        IncidentStatus::Open
    );
    assert_eq!(
        s.get_resource(a, ResourceKind::Channel, c.id)
            .await
            .unwrap(),
        c
    );
}

pub async fn deleting_a_tenant_removes_what_it_owns(h: Harness) {
    let s = h.open().await;
    let a = tenant(&s, "acme").await;
    let b = tenant(&s, "globex").await;
    let m = s
        .create_monitor(a, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    let kept = s
        .create_monitor(b, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    s.open_incident(a, m.id, 1, None, at(T0)).await.unwrap();
    s.create_resource(a, &channel("ops"), at(T0)).await.unwrap();
    s.delete_tenant(a).await.unwrap();
    let all = s.all_monitors().await.unwrap();
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), vec![kept.id]);
    assert!(
        s.list_resources(a, ResourceKind::Channel)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn monitors_created_in_bulk_are_all_or_nothing(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let batch: Vec<_> = (0..300)
        .map(|i| http_monitor(&format!("bulk-{i}")))
        .collect();
    let created = s.create_monitors(t, &batch, at(T0)).await.unwrap();
    assert_eq!(created.len(), 300);
    assert!(created.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(
        s.get_monitor(t, created[299].id).await.unwrap(),
        created[299]
    );
    // One clash (with an existing name) and nothing of the batch is kept.
    let clashing = vec![
        http_monitor("new-1"),
        http_monitor("bulk-7"),
        http_monitor("new-2"),
    ];
    assert!(matches!(
        s.create_monitors(t, &clashing, at(T0)).await,
        Err(StoreError::Conflict(_))
    ));
    let search = MonitorFilter {
        search: Some("new-".into()),
        ..Default::default()
    };
    assert!(
        s.list_monitors(t, &search, &PageRequest::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(s.all_monitors().await.unwrap().len(), 300);
}

pub async fn schedule_entries_and_monitors_by_ids_are_global(h: Harness) {
    let s = h.open().await;
    let a = tenant(&s, "acme").await;
    let b = tenant(&s, "globex").await;
    let ma = s
        .create_monitor(a, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    let mut paused = http_monitor("web");
    paused.enabled = false;
    paused.interval_ms = 60_000;
    let mb = s.create_monitor(b, &paused, at(T0)).await.unwrap();
    let entries = s.schedule_entries().await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0],
        pingtower_store::ScheduleEntry {
            id: ma.id,
            tenant_id: a,
            seq: ma.seq,
            kind: MonitorKind::Http,
            interval_ms: 30_000,
            enabled: true,
            version: 1
        }
    );
    assert_eq!(
        (entries[1].id, entries[1].enabled, entries[1].interval_ms),
        (mb.id, false, 60_000)
    );
    let mut ids: Vec<MonitorId> = (0..700).map(|_| MonitorId::new()).collect();
    ids.push(mb.id);
    ids.insert(3, ma.id);
    let mut found = s.monitors_by_ids(&ids).await.unwrap();
    found.sort_by_key(|m| m.seq);
    assert_eq!(found, vec![ma, mb]);
    assert!(s.monitors_by_ids(&[]).await.unwrap().is_empty());
}

// ---- statistics ----------------------------------------------------------------------------

use pingtower_core::stats::{NoMaintenance, Rollup, RollupLevel};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;

/// The sum of the stored rollups of `level` of one monitor.
async fn rollup_total(s: &Arc<dyn Store>, m: &Monitor, level: RollupLevel) -> Rollup {
    let mut total = Rollup::default();
    for r in s.rollups(&[m.seq], level, 0, i64::MAX).await.unwrap() {
        total.merge(&r.rollup);
    }
    total
}

async fn fold_all(s: &Arc<dyn Store>, until: i64) {
    loop {
        let r = s
            .fold_results(at(until), HOUR, &NoMaintenance)
            .await
            .unwrap();
        if r.caught_up {
            break;
        }
    }
}

fn with_latency(mut r: CheckResult, us: i64) -> CheckResult {
    r.latency_us = us;
    r
}

pub async fn results_fold_into_rollups_exactly_once(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let m = s
        .create_monitor(t, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    let base = RollupLevel::Day.floor(T0) + 5 * HOUR;
    // 3 hours, one result a minute: every 10th DOWN.
    let batch: Vec<CheckResult> = (0..180)
        .map(|i| {
            let status = if i % 10 == 0 {
                CheckStatus::Down
            } else {
                CheckStatus::Up
            };
            with_latency(result(&m, base + i * MIN + 17, status), 1_000 + i * 100)
        })
        .collect();
    assert_eq!(s.insert_results(&batch).await.unwrap(), 180);
    assert_eq!(s.fold_watermark().await.unwrap(), None);
    fold_all(&s, base + 2 * HOUR).await;
    assert_eq!(s.fold_watermark().await.unwrap(), Some(at(base + 2 * HOUR)));
    let minute = rollup_total(&s, &m, RollupLevel::Minute).await;
    assert_eq!((minute.up, minute.down), (108, 12));
    // The same batch delivered again: nothing new is stored, and a fold counts nothing twice.
    assert_eq!(s.insert_results(&batch).await.unwrap(), 0);
    fold_all(&s, base + 4 * HOUR).await;
    for level in RollupLevel::ALL {
        let r = rollup_total(&s, &m, level).await;
        assert_eq!((r.up, r.down, r.degraded), (162, 18, 0), "{level:?}");
        assert_eq!(r.latency.count(), 162);
        assert_eq!(r.latency.max(), Some(1_000 + 179 * 100));
    }
    assert_eq!(
        s.rollups(&[m.seq], RollupLevel::Hour, 0, i64::MAX)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        s.rollups(&[m.seq], RollupLevel::Minute, base, base + HOUR)
            .await
            .unwrap()
            .len(),
        60
    );

    // A result that arrives after its minute was folded is counted by the next fold, once,
    // even when it arrives twice.
    let late = result(&m, base + 30 * MIN + 30_000, CheckStatus::Degraded);
    assert_eq!(
        s.insert_results(std::slice::from_ref(&late)).await.unwrap(),
        1
    );
    assert_eq!(
        s.insert_results(std::slice::from_ref(&late)).await.unwrap(),
        0
    );
    let report = s
        .fold_results(at(base + 4 * HOUR), HOUR, &NoMaintenance)
        .await
        .unwrap();
    assert_eq!((report.folded, report.late), (0, 1));
    fold_all(&s, base + 4 * HOUR).await;
    for level in RollupLevel::ALL {
        let r = rollup_total(&s, &m, level).await;
        assert_eq!((r.up, r.down, r.degraded), (162, 18, 1), "{level:?}");
    }
    // Raw points of a window are what was stored.
    let points = s.result_points(&[m.seq], base, base + HOUR).await.unwrap();
    assert_eq!(points.len(), 61);
    // Other monitors' seqs select nothing of this one.
    assert!(
        s.rollups(&[m.seq + 1000], RollupLevel::Day, 0, i64::MAX)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn old_results_are_compacted_and_still_read(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let m = s
        .create_monitor(t, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    let base = RollupLevel::Day.floor(T0) + 5 * HOUR;
    let mut batch: Vec<CheckResult> = (0..240)
        .map(|i| {
            let status = if i % 7 == 0 {
                CheckStatus::Down
            } else {
                CheckStatus::Up
            };
            let mut r = with_latency(result(&m, base + i * MIN + (i % 5), status), 900 + i);
            r.details = Some(json!({"timings": {"total_us": 900 + i}}));
            r
        })
        .collect();
    let mut eu = result(&m, base + 10 * MIN, CheckStatus::Up);
    eu.region = "eu".into();
    batch.push(eu);
    assert_eq!(s.insert_results(&batch).await.unwrap(), 241);
    let before = s
        .list_results(t, m.id, &PageRequest::first(1000))
        .await
        .unwrap()
        .items;
    // Nothing is compacted before it is folded.
    assert_eq!(s.compact_results(at(base + 4 * HOUR)).await.unwrap(), 0);
    fold_all(&s, base + 4 * HOUR).await;
    let folded = rollup_total(&s, &m, RollupLevel::Day).await;
    // Three whole hours move; the fourth stays recent.
    assert_eq!(
        s.compact_results(at(base + 3 * HOUR + 59 * MIN))
            .await
            .unwrap(),
        181
    );
    assert_eq!(
        s.compact_results(at(base + 3 * HOUR + 59 * MIN))
            .await
            .unwrap(),
        0
    );
    // Reading is unchanged, but UP results lost their details.
    let after = s
        .list_results(t, m.id, &PageRequest::first(1000))
        .await
        .unwrap()
        .items;
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(
            (a.checked_at, &a.region, a.status, a.latency_us, &a.reason),
            (b.checked_at, &b.region, b.status, b.latency_us, &b.reason)
        );
        let compacted = a.checked_at.as_millis() < base + 3 * HOUR;
        if compacted && a.status == CheckStatus::Up {
            assert_eq!(a.details, None);
        } else {
            assert_eq!(a.details, b.details);
        }
    }
    // Paging newest first crosses from recent rows into chunks without loss or repeat.
    let mut seen = Vec::new();
    let mut page = PageRequest::first(37);
    loop {
        let got = s.list_results(t, m.id, &page).await.unwrap();
        seen.extend(got.items.iter().map(|r| (r.checked_at, r.region.clone())));
        match got.next_cursor {
            Some(c) => page.cursor = Some(c.0),
            None => break,
        }
    }
    let want: Vec<_> = before
        .iter()
        .map(|r| (r.checked_at, r.region.clone()))
        .collect();
    assert_eq!(seen, want);
    let points = s
        .result_points(&[m.seq], base, base + 4 * HOUR)
        .await
        .unwrap();
    assert_eq!(points.len(), 241);

    // A compacted result delivered again is found in its chunk: not stored, not counted.
    assert_eq!(s.insert_results(&[batch[3].clone()]).await.unwrap(), 1);
    fold_all(&s, base + 4 * HOUR).await;
    assert_eq!(rollup_total(&s, &m, RollupLevel::Day).await, folded);
    assert_eq!(
        s.list_results(t, m.id, &PageRequest::first(1000))
            .await
            .unwrap()
            .items
            .len(),
        241
    );
    // A result new to a compacted hour is counted and joins the chunk at the next compaction.
    let straggler = result(&m, base + 20 * MIN + 30_000, CheckStatus::Up);
    assert_eq!(s.insert_results(&[straggler]).await.unwrap(), 1);
    assert_eq!(
        s.compact_results(at(base + 3 * HOUR)).await.unwrap(),
        0,
        "waits for its fold"
    );
    fold_all(&s, base + 4 * HOUR).await;
    assert_eq!(
        rollup_total(&s, &m, RollupLevel::Day).await.up,
        folded.up + 1
    );
    assert_eq!(s.compact_results(at(base + 3 * HOUR)).await.unwrap(), 1);
    assert_eq!(
        s.list_results(t, m.id, &PageRequest::first(1000))
            .await
            .unwrap()
            .items
            .len(),
        242
    );

    // Pruning removes whole compacted hours.
    s.prune_results(at(base + 2 * HOUR)).await.unwrap();
    let left = s
        .list_results(t, m.id, &PageRequest::first(1000))
        .await
        .unwrap()
        .items;
    assert!(
        left.iter()
            .all(|r| r.checked_at.as_millis() >= base + 2 * HOUR)
    );
    assert_eq!(left.len(), 120);
}

pub async fn rollups_are_pruned_per_level_and_with_their_monitor(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let m = s
        .create_monitor(t, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    let gone = s
        .create_monitor(t, &http_monitor("gone"), at(T0))
        .await
        .unwrap();
    let base = RollupLevel::Day.floor(T0);
    let day = 86_400_000;
    let mut batch = Vec::new();
    for d in 0..3 {
        for mon in [&m, &gone] {
            batch.push(result(mon, base + d * day + 5 * MIN, CheckStatus::Up));
        }
    }
    s.insert_results(&batch).await.unwrap();
    fold_all(&s, base + 3 * day).await;
    assert_eq!(
        s.rollups(&[m.seq], RollupLevel::Minute, 0, i64::MAX)
            .await
            .unwrap()
            .len(),
        3
    );
    s.delete_monitor(t, gone.id).await.unwrap();
    s.prune_rollups(RollupLevel::Minute, at(base + day))
        .await
        .unwrap();
    assert_eq!(
        s.rollups(&[m.seq], RollupLevel::Minute, 0, i64::MAX)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        s.rollups(&[m.seq], RollupLevel::Hour, 0, i64::MAX)
            .await
            .unwrap()
            .len(),
        3
    );
    for level in RollupLevel::ALL {
        assert!(
            s.rollups(&[gone.seq], level, 0, i64::MAX)
                .await
                .unwrap()
                .is_empty()
        );
    }
    s.prune_rollups(RollupLevel::Day, at(0)).await.unwrap();
    assert_eq!(
        s.rollups(&[m.seq], RollupLevel::Day, 0, i64::MAX)
            .await
            .unwrap()
            .len(),
        3
    );
}

pub async fn incidents_between_a_window(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let other = tenant(&s, "other").await;
    let m = s
        .create_monitor(t, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    let m2 = s
        .create_monitor(t, &http_monitor("web"), at(T0))
        .await
        .unwrap();
    let o = s
        .create_monitor(other, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    let a = s
        .open_incident(t, m.id, 1, Some("down"), at(T0))
        .await
        .unwrap()
        .unwrap();
    s.resolve_incident(t, a.id, None, at(T0 + 10 * MIN))
        .await
        .unwrap();
    let _b = s
        .open_incident(t, m2.id, 1, Some("down"), at(T0 + 20 * MIN))
        .await
        .unwrap()
        .unwrap();
    s.open_incident(other, o.id, 1, None, at(T0))
        .await
        .unwrap()
        .unwrap();
    let all = s
        .incidents_between(t, None, at(T0 + 5 * MIN), at(T0 + 30 * MIN))
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|i| i.tenant_id == t));
    let after = s
        .incidents_between(t, None, at(T0 + 11 * MIN), at(T0 + 30 * MIN))
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    let of_m = s
        .incidents_between(t, Some(&[m.id]), at(0), at(T0 + HOUR))
        .await
        .unwrap();
    assert_eq!(of_m.len(), 1);
    assert!(
        s.incidents_between(t, Some(&[o.id]), at(0), at(T0 + HOUR))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.incidents_between(t, Some(&[]), at(0), at(T0 + HOUR))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn compacted_results_of_several_regions_are_all_listed(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let m = s
        .create_monitor(t, &http_monitor("api"), at(T0))
        .await
        .unwrap();
    let base = RollupLevel::Day.floor(T0);
    let mut batch = Vec::new();
    for i in 0..18 {
        for region in ["eu", "us", "ap"] {
            let mut r = result(&m, base + i * 20 * MIN, CheckStatus::Up);
            r.region = region.into();
            batch.push(r);
        }
    }
    s.insert_results(&batch).await.unwrap();
    fold_all(&s, base + 8 * HOUR).await;
    assert_eq!(s.compact_results(at(base + 7 * HOUR)).await.unwrap(), 54);
    let all = s
        .list_results(t, m.id, &PageRequest::first(1000))
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 54);
    let mut page = PageRequest::first(7);
    let mut n = 0;
    loop {
        let got = s.list_results(t, m.id, &page).await.unwrap();
        n += got.items.len();
        match got.next_cursor {
            Some(c) => page.cursor = Some(c.0),
            None => break,
        }
    }
    assert_eq!(n, 54);
}

/// Compaction works through monitors a group at a time: every group is compacted, the last one
/// included, and nothing is left behind or read twice.
pub async fn compaction_covers_every_monitor_across_groups(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let news: Vec<NewMonitor> = (0..230).map(|i| http_monitor(&format!("m{i}"))).collect();
    let monitors = s.create_monitors(t, &news, at(T0)).await.unwrap();
    let base = RollupLevel::Day.floor(T0);
    let batch: Vec<CheckResult> = monitors
        .iter()
        .flat_map(|m| {
            [
                result(m, base + 5 * MIN, CheckStatus::Up),
                result(m, base + HOUR + 5 * MIN, CheckStatus::Down),
            ]
        })
        .collect();
    assert_eq!(s.insert_results(&batch).await.unwrap(), 460);
    fold_all(&s, base + 4 * HOUR).await;
    assert_eq!(s.compact_results(at(base + 3 * HOUR)).await.unwrap(), 460);
    assert_eq!(s.compact_results(at(base + 3 * HOUR)).await.unwrap(), 0);
    for m in [&monitors[0], &monitors[99], &monitors[100], &monitors[229]] {
        let got = s
            .list_results(t, m.id, &PageRequest::first(10))
            .await
            .unwrap()
            .items;
        assert_eq!(got.len(), 2, "monitor {}", m.name);
        assert_eq!(got[0].status, CheckStatus::Down);
    }
    // A late result of one monitor joins its stored chunk; its neighbours' chunks of that
    // hour are left as they are.
    let late = result(&monitors[150], base + 30 * MIN, CheckStatus::Degraded);
    assert_eq!(s.insert_results(&[late]).await.unwrap(), 1);
    fold_all(&s, base + 4 * HOUR).await;
    assert_eq!(s.compact_results(at(base + 3 * HOUR)).await.unwrap(), 1);
    for (m, n) in [
        (&monitors[150], 3),
        (&monitors[149], 2),
        (&monitors[151], 2),
    ] {
        let got = s
            .list_results(t, m.id, &PageRequest::first(10))
            .await
            .unwrap()
            .items;
        assert_eq!(got.len(), n, "monitor {}", m.name);
    }
}

/// A backlog of many hours (a stats role that was down, an upgrade) is compacted completely,
/// across hours with no rows, and past a late result that is not folded yet (which stays, and
/// goes on a later pass once folded).
pub async fn a_long_compaction_backlog_is_moved_past_gaps_and_late_rows(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let news: Vec<NewMonitor> = (0..3).map(|i| http_monitor(&format!("m{i}"))).collect();
    let monitors = s.create_monitors(t, &news, at(T0)).await.unwrap();
    let base = RollupLevel::Day.floor(T0);
    // Hours 0-9 and 20-29, three results an hour; nothing in hours 10-19.
    let batch: Vec<CheckResult> = monitors
        .iter()
        .flat_map(|m| {
            (0..30)
                .filter(|h| !(10..20).contains(h))
                .flat_map(move |h| (0..3).map(move |k| (h, k)))
                .map(|(h, k)| result(m, base + h * HOUR + k * 20 * MIN, CheckStatus::Up))
        })
        .collect();
    assert_eq!(s.insert_results(&batch).await.unwrap(), 180);
    fold_all(&s, base + 40 * HOUR).await;
    // A result of hour 0 arrives after its minute was folded: it waits for the next fold.
    let late = result(&monitors[1], base + 50 * MIN, CheckStatus::Down);
    assert_eq!(s.insert_results(&[late]).await.unwrap(), 1);
    assert_eq!(s.compact_results(at(base + 36 * HOUR)).await.unwrap(), 180);
    assert_eq!(s.compact_results(at(base + 36 * HOUR)).await.unwrap(), 0);
    fold_all(&s, base + 40 * HOUR).await;
    assert_eq!(s.compact_results(at(base + 36 * HOUR)).await.unwrap(), 1);
    for (m, n) in [(&monitors[0], 60), (&monitors[1], 61), (&monitors[2], 60)] {
        let got = s
            .list_results(t, m.id, &PageRequest::first(100))
            .await
            .unwrap()
            .items;
        assert_eq!(got.len(), n, "monitor {}", m.name);
    }
    let down = rollup_total(&s, &monitors[1], RollupLevel::Hour).await;
    assert_eq!(down.checks(), 61, "the late result counted once");
}

/// Two owners demoting each other at the same moment: one of them stays owner.
pub async fn owners_demoting_each_other_at_once_leave_one(h: Harness) {
    let s = h.open().await;
    let t = tenant(&s, "acme").await;
    let mut owners = Vec::new();
    for i in 0..2 {
        let u = s
            .create_user(
                &NewUser {
                    email: format!("owner{i}@example.test"),
                    display_name: None,
                    password_hash: None,
                    platform_admin: false,
                },
                at(T0),
            )
            .await
            .unwrap();
        s.set_membership(t, u.id, Role::Owner, at(T0))
            .await
            .unwrap();
        owners.push(u.id);
    }
    for round in 0..20 {
        let (a, b) = (s.clone(), s.clone());
        let (o0, o1) = (owners[0], owners[1]);
        let (r0, r1) = tokio::join!(
            tokio::spawn(async move { a.set_membership(t, o0, Role::Admin, at(T0)).await }),
            tokio::spawn(async move { b.set_membership(t, o1, Role::Admin, at(T0)).await }),
        );
        let (r0, r1) = (r0.unwrap(), r1.unwrap());
        assert!(
            r0.is_ok() != r1.is_ok(),
            "round {round}: exactly one demotion passes: {r0:?} {r1:?}"
        );
        let failed = if r0.is_err() { r0 } else { r1 };
        assert!(matches!(failed, Err(StoreError::LastOwner)), "{failed:?}");
        let left: Vec<_> = s
            .members_of_tenant(t)
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.role == Role::Owner)
            .collect();
        assert_eq!(left.len(), 1, "round {round}");
        for o in &owners {
            s.set_membership(t, *o, Role::Owner, at(T0)).await.unwrap();
        }
    }
}

pub async fn sessions_and_invitations(h: Harness) {
    let s = h.open().await;
    let u = s
        .create_user(
            &NewUser {
                email: "s@example.test".into(),
                display_name: None,
                password_hash: Some("h1".into()),
                platform_admin: false,
            },
            at(T0),
        )
        .await
        .unwrap();
    assert!(u.email_verified, "made by an admin or the operator");
    s.set_email_verified(u.id, false).await.unwrap();
    assert!(!s.get_user(u.id).await.unwrap().email_verified);
    s.set_password(u.id, Some("h2"), true).await.unwrap();
    let u2 = s.get_user(u.id).await.unwrap();
    assert_eq!(
        (u2.password_hash.as_deref(), u2.email_verified),
        (Some("h2"), true)
    );
    assert!(matches!(
        s.set_password(UserId::new(), Some("h"), true).await,
        Err(StoreError::NotFound)
    ));
    // Replaced only while the stored hash is the one named: the second of two racing resets
    // changes nothing.
    assert!(s.replace_password(u.id, "h2", "h3", false).await.unwrap());
    assert!(!s.replace_password(u.id, "h2", "h4", true).await.unwrap());
    let u3 = s.get_user(u.id).await.unwrap();
    assert_eq!(
        (u3.password_hash.as_deref(), u3.email_verified),
        (Some("h3"), false)
    );
    assert!(
        !s.replace_password(UserId::new(), "h3", "h5", true)
            .await
            .unwrap()
    );
    s.set_password(u.id, None, true).await.unwrap();
    assert!(!s.replace_password(u.id, "", "h6", true).await.unwrap());
    assert_eq!(s.get_user(u.id).await.unwrap().password_hash, None);

    let session = |id| Session {
        id,
        user_id: u.id,
        created_at: at(T0),
        expires_at: at(T0 + 3_600_000),
        revoked_at: None,
    };
    let (a, b, c) = (SessionId::new(), SessionId::new(), SessionId::new());
    for id in [a, b, c] {
        s.create_session(&session(id)).await.unwrap();
    }
    assert_eq!(s.get_session(a).await.unwrap(), Some(session(a)));
    assert!(
        s.get_session(a)
            .await
            .unwrap()
            .unwrap()
            .is_active(at(T0 + 1))
    );
    assert!(
        !s.get_session(a)
            .await
            .unwrap()
            .unwrap()
            .is_active(at(T0 + 3_600_000))
    );
    assert_eq!(s.get_session(SessionId::new()).await.unwrap(), None);
    // Another user cannot revoke it.
    assert!(
        !s.revoke_session(UserId::new(), a, at(T0 + 5))
            .await
            .unwrap()
    );
    assert!(s.revoke_session(u.id, a, at(T0 + 5)).await.unwrap());
    assert!(!s.revoke_session(u.id, a, at(T0 + 6)).await.unwrap());
    assert_eq!(
        s.get_session(a).await.unwrap().unwrap().revoked_at,
        Some(at(T0 + 5))
    );
    assert_eq!(
        s.revoke_sessions_of_user(u.id, Some(b), at(T0 + 7))
            .await
            .unwrap(),
        1
    );
    assert!(
        s.get_session(b)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    assert!(
        s.get_session(c)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(
        s.revoke_sessions_of_user(u.id, None, at(T0 + 8))
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        s.create_session(&Session {
            user_id: UserId::new(),
            ..session(SessionId::new())
        })
        .await,
        Err(StoreError::NotFound)
    ));

    let t = tenant(&s, "acme").await;
    let inv = Invitation {
        id: InvitationId::new(),
        tenant_id: t,
        email: "New@Example.test".into(),
        role: Role::Editor,
        token_hash: vec![1; 32],
        invited_by: Some(u.id),
        created_at: at(T0),
        expires_at: at(T0 + 86_400_000),
        accepted_at: None,
    };
    s.create_invitation(&inv).await.unwrap();
    let other = tenant(&s, "other").await;
    let pending = s.pending_invitations(t, at(T0 + 1)).await.unwrap();
    assert_eq!(pending.iter().map(|i| i.id).collect::<Vec<_>>(), [inv.id]);
    assert!(
        s.pending_invitations(other, at(T0 + 1))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.pending_invitations(t, at(T0 + 86_400_000))
            .await
            .unwrap()
            .is_empty(),
        "expired"
    );
    let withdrawn = Invitation {
        id: InvitationId::new(),
        token_hash: vec![3; 32],
        ..inv.clone()
    };
    s.create_invitation(&withdrawn).await.unwrap();
    assert!(matches!(
        s.delete_invitation(other, withdrawn.id).await,
        Err(StoreError::NotFound)
    ));
    s.delete_invitation(t, withdrawn.id).await.unwrap();
    assert_eq!(s.find_invitation(&[3; 32]).await.unwrap(), None);
    let found = s.find_invitation(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(found.email, "new@example.test", "stored lower-case");
    assert_eq!(
        (found.id, found.tenant_id, found.role),
        (inv.id, t, Role::Editor)
    );
    assert_eq!(s.find_invitation(&[2; 32]).await.unwrap(), None);
    assert!(s.accept_invitation(inv.id, at(T0 + 9)).await.unwrap());
    assert!(
        !s.accept_invitation(inv.id, at(T0 + 10)).await.unwrap(),
        "once"
    );
    assert_eq!(
        s.find_invitation(&[1; 32])
            .await
            .unwrap()
            .unwrap()
            .accepted_at,
        Some(at(T0 + 9))
    );
    // They go with their tenant.
    s.delete_tenant(t).await.unwrap();
    assert_eq!(s.find_invitation(&[1; 32]).await.unwrap(), None);
}
