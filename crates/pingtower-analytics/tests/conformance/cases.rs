//! The cases, each against a store of its own.

use crate::Harness;
use pingtower_analytics::NewEvent;
use pingtower_analytics::store::{Appended, Cursor, Grain, Idempotency, MinuteCount};
use pingtower_core::{TenantId, Timestamp};
use serde_json::{Map, json};

/// 2026-11-18T10:26:40Z.
const NOW: i64 = 1_795_000_000_000;

fn event(name: &str, at: i64) -> NewEvent {
    let mut properties = Map::new();
    properties.insert("plan".into(), json!("pro"));
    properties.insert("amount".into(), json!(9.5));
    properties.insert("geo".into(), json!({"country": "DE"}));
    NewEvent {
        name: name.into(),
        timestamp: Timestamp::from_millis(at),
        distinct_id: Some("user-1".into()),
        session_id: None,
        properties,
    }
}

fn all() -> pingtower_analytics::packed::Columns {
    pingtower_analytics::packed::Columns::all()
}

fn now() -> Timestamp {
    Timestamp::from_millis(NOW)
}

fn names(events: &[pingtower_analytics::store::StoredEvent]) -> Vec<String> {
    events.iter().map(|e| e.name.clone()).collect()
}

pub async fn a_batch_is_stored_whole_and_listed_newest_first(h: Harness) {
    let store = h.open().await;
    let t = TenantId::new();
    let batch = vec![
        event("a", NOW - 3_000),
        event("b", NOW - 1_000),
        event("c", NOW - 2_000),
    ];
    assert_eq!(
        store.append(t, &batch, None, now()).await.unwrap(),
        Appended::Stored(3)
    );
    let listed = store.list(t, None, None, 10).await.unwrap();
    assert_eq!(names(&listed), ["b", "c", "a"]);
    assert_eq!(listed[0].distinct_id.as_deref(), Some("user-1"));
    assert_eq!(listed[0].properties["geo"]["country"], "DE");
    assert_eq!(listed[0].properties["amount"], 9.5);
    assert_eq!(listed[0].timestamp.as_millis(), NOW - 1_000);
    let only = store.list(t, Some("c"), None, 10).await.unwrap();
    assert_eq!(names(&only), ["c"]);
    // A large batch goes in several statements, in one transaction.
    let big: Vec<NewEvent> = (0..2_500).map(|i| event("bulk", NOW - i)).collect();
    store.append(t, &big, None, now()).await.unwrap();
    assert_eq!(
        store
            .list(t, Some("bulk"), None, 5_000)
            .await
            .unwrap()
            .len(),
        2_500
    );
}

pub async fn the_cursor_neither_skips_nor_repeats(h: Harness) {
    let store = h.open().await;
    let t = TenantId::new();
    // Several events share a millisecond: the id orders them.
    let batch: Vec<NewEvent> = (0..25)
        .map(|i| event(&format!("e{i}"), NOW - (i / 5)))
        .collect();
    store.append(t, &batch, None, now()).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list(t, None, cursor, 7).await.unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(Cursor::of);
        seen.extend(names(&page));
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen.len(), 25, "{seen:?}");
    assert_eq!(sorted.len(), 25);
    let c = Cursor::decode(&cursor.unwrap().encode()).unwrap();
    assert_eq!(Some(c), cursor);
}

pub async fn a_key_counts_a_batch_once_within_its_window(h: Harness) {
    let store = h.open().await;
    let t = TenantId::new();
    let batch = vec![event("paid", NOW - 1_000), event("paid", NOW - 500)];
    let key = Idempotency {
        key: "batch-1",
        answer: r#"{"accepted":2,"rejected":[]}"#,
    };
    assert_eq!(
        store.append(t, &batch, Some(key), now()).await.unwrap(),
        Appended::Stored(2)
    );
    let again = Idempotency {
        answer: "something else",
        ..key
    };
    assert_eq!(
        store
            .append(t, &batch, Some(again), now().add_millis(60_000))
            .await
            .unwrap(),
        Appended::Replayed(r#"{"accepted":2,"rejected":[]}"#.into())
    );
    assert_eq!(store.list(t, None, None, 10).await.unwrap().len(), 2);
    // Another tenant's key of the same text is its own.
    let other = TenantId::new();
    assert_eq!(
        store.append(other, &batch, Some(key), now()).await.unwrap(),
        Appended::Stored(2)
    );
    // After the window, the key is new again.
    let later = now().add_millis(pingtower_analytics::store::IDEMPOTENCY_WINDOW_MS + 1);
    assert_eq!(
        store.append(t, &batch, Some(key), later).await.unwrap(),
        Appended::Stored(2)
    );
    assert_eq!(store.list(t, None, None, 10).await.unwrap().len(), 4);
}

pub async fn racing_batches_with_one_key_are_stored_once(h: Harness) {
    let store = h.open().await;
    let t = TenantId::new();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let batch: Vec<NewEvent> = (0..50).map(|i| event("race", NOW - i)).collect();
                let key = Idempotency {
                    key: "same",
                    answer: "{}",
                };
                store.append(t, &batch, Some(key), now()).await.unwrap()
            })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        if let Appended::Stored(_) = task.await.unwrap() {
            stored += 1;
        }
    }
    assert_eq!(stored, 1);
    assert_eq!(store.list(t, None, None, 1_000).await.unwrap().len(), 50);
}

pub async fn counts_per_minute_and_names_follow_the_events(h: Harness) {
    let store = h.open().await;
    let t = TenantId::new();
    let minute = NOW - NOW % 60_000;
    let mut batch = vec![
        event("signup", minute + 1_000),
        event("signup", minute + 59_999),
        event("signup", minute + 60_000),
        event("order", minute + 5_000),
    ];
    store.append(t, &batch, None, now()).await.unwrap();
    // A second batch adds to the same minutes.
    batch.truncate(1);
    store.append(t, &batch, None, now()).await.unwrap();
    let counts = store
        .minute_counts(
            t,
            None,
            Timestamp::from_millis(minute),
            Timestamp::from_millis(minute + 120_000),
        )
        .await
        .unwrap();
    let mc = |name: &str, at: i64, count: i64| MinuteCount {
        name: name.into(),
        minute: Timestamp::from_millis(at),
        count,
    };
    assert_eq!(
        counts,
        [
            mc("order", minute, 1),
            mc("signup", minute, 3),
            mc("signup", minute + 60_000, 1)
        ]
    );
    let only = store
        .minute_counts(
            t,
            Some(&["order".to_owned()]),
            Timestamp::from_millis(minute),
            Timestamp::from_millis(minute + 60_000),
        )
        .await
        .unwrap();
    assert_eq!(only, [mc("order", minute, 1)]);
    let totals = store
        .minute_totals(
            t,
            None,
            Timestamp::from_millis(minute),
            Timestamp::from_millis(minute + 120_000),
        )
        .await
        .unwrap();
    assert_eq!((totals.events, totals.rows), (5, 3));
    let signups = store
        .minute_totals(
            t,
            Some(&["signup".to_owned()]),
            Timestamp::from_millis(minute),
            Timestamp::from_millis(minute + 60_000),
        )
        .await
        .unwrap();
    assert_eq!((signups.events, signups.rows), (3, 1));
    // By hour: the rows of the hours that hold the range (one, here, per name).
    let range = (
        Timestamp::from_millis(minute),
        Timestamp::from_millis(minute + 120_000),
    );
    let hours = store.totals(t, None, Grain::Hour, range).await.unwrap();
    assert_eq!((hours.events, hours.rows), (5, 2));
    let signup_hours = store
        .totals(t, Some(&["signup".to_owned()]), Grain::Hour, range)
        .await
        .unwrap();
    assert_eq!((signup_hours.events, signup_hours.rows), (4, 1));
    assert_eq!(
        store
            .totals(t, Some(&[]), Grain::Hour, range)
            .await
            .unwrap(),
        Default::default()
    );
    let names = store.names(t).await.unwrap();
    assert_eq!(
        names
            .iter()
            .map(|n| (n.name.as_str(), n.count))
            .collect::<Vec<_>>(),
        [("signup", 4), ("order", 1)]
    );
}

pub async fn nothing_crosses_tenants(h: Harness) {
    let store = h.open().await;
    let (a, b) = (TenantId::new(), TenantId::new());
    store
        .append(a, &[event("a-only", NOW)], None, now())
        .await
        .unwrap();
    store
        .append(b, &[event("b-only", NOW)], None, now())
        .await
        .unwrap();
    assert_eq!(
        names(&store.list(a, None, None, 10).await.unwrap()),
        ["a-only"]
    );
    assert_eq!(
        names(&store.list(b, None, None, 10).await.unwrap()),
        ["b-only"]
    );
    assert!(
        store
            .list(a, Some("b-only"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let range = (
        Timestamp::from_millis(NOW - 60_000),
        Timestamp::from_millis(NOW + 60_000),
    );
    let counts = store
        .minute_counts(a, None, range.0, range.1)
        .await
        .unwrap();
    assert!(counts.iter().all(|c| c.name == "a-only"), "{counts:?}");
    assert_eq!(store.names(b).await.unwrap()[0].name, "b-only");
    assert_eq!(store.names(b).await.unwrap().len(), 1);
}

pub async fn deleting_a_tenant_removes_its_events(h: Harness) {
    let store = h.open().await;
    let (gone, kept) = (TenantId::new(), TenantId::new());
    let key = Idempotency {
        key: "k",
        answer: "{}",
    };
    store
        .append(gone, &[event("x", NOW)], Some(key), now())
        .await
        .unwrap();
    store
        .append(kept, &[event("y", NOW)], None, now())
        .await
        .unwrap();
    assert_eq!(store.delete_tenant(gone).await.unwrap(), 1);
    assert!(store.list(gone, None, None, 10).await.unwrap().is_empty());
    assert!(store.names(gone).await.unwrap().is_empty());
    // Its keys went too.
    assert_eq!(
        store
            .append(gone, &[event("x", NOW)], Some(key), now())
            .await
            .unwrap(),
        Appended::Stored(1)
    );
    assert_eq!(store.list(kept, None, None, 10).await.unwrap().len(), 1);
}

pub async fn old_events_are_pruned_by_whole_minutes(h: Harness) {
    let store = h.open().await;
    let t = TenantId::new();
    let day = 86_400_000;
    // Months apart, so that PostgreSQL drops whole partitions and deletes in the straddling one.
    let old: Vec<NewEvent> = [120 * day, 90 * day, 40 * day, 31 * day, 29 * day, 1_000]
        .iter()
        .map(|ago| event(&format!("ago-{}", ago / day), NOW - ago))
        .collect();
    for e in &old {
        store.maintain(e.timestamp).await.unwrap();
    }
    store.append(t, &old, None, now()).await.unwrap();
    let removed = store
        .prune(Timestamp::from_millis(NOW - 30 * day), now())
        .await
        .unwrap();
    assert_eq!(removed, 4);
    assert_eq!(
        names(&store.list(t, None, None, 10).await.unwrap()),
        ["ago-0", "ago-29"]
    );
    let counts = store
        .minute_counts(
            t,
            None,
            Timestamp::from_millis(0),
            Timestamp::from_millis(NOW + 1),
        )
        .await
        .unwrap();
    assert_eq!(counts.len(), 2, "{counts:?}");
    // Idempotency keys past their window go too.
    let key = Idempotency {
        key: "old",
        answer: "{}",
    };
    store
        .append(t, &[event("k", NOW)], Some(key), now())
        .await
        .unwrap();
    let later = now().add_millis(pingtower_analytics::store::IDEMPOTENCY_WINDOW_MS + 1);
    store.prune(Timestamp::from_millis(0), later).await.unwrap();
    if h.is_postgres() {
        // Maintenance is repeatable.
        store.maintain(now()).await.unwrap();
        store.maintain(now()).await.unwrap();
    }
}

pub async fn events_survive_reopening(h: Harness) {
    let t = TenantId::new();
    {
        let store = h.open().await;
        store
            .append(t, &[event("kept", NOW)], None, now())
            .await
            .unwrap();
    }
    let store = h.open().await;
    assert_eq!(
        names(&store.list(t, None, None, 10).await.unwrap()),
        ["kept"]
    );
}

pub async fn a_scan_reads_a_window_oldest_first_page_by_page(h: Harness) {
    let store = h.open().await;
    let (t, other) = (TenantId::new(), TenantId::new());
    let batch: Vec<NewEvent> = (0..40)
        .map(|i| {
            event(
                if i % 2 == 0 { "even" } else { "odd" },
                NOW - 40_000 + (i / 3) * 1_000,
            )
        })
        .collect();
    store.append(t, &batch, None, now()).await.unwrap();
    store.append(other, &batch, None, now()).await.unwrap();
    let (from, to) = (
        Timestamp::from_millis(NOW - 30_000),
        Timestamp::from_millis(NOW),
    );
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .scan(t, None, (from, to), after, 6, &all())
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(Cursor::of);
        seen.extend(page);
    }
    let expected = batch
        .iter()
        .filter(|e| e.timestamp >= from && e.timestamp < to)
        .count();
    assert_eq!(seen.len(), expected);
    assert!(
        seen.windows(2)
            .all(|w| (w[0].timestamp, w[0].id) < (w[1].timestamp, w[1].id))
    );
    let odd = store
        .scan(
            t,
            Some(&["odd".to_owned()]),
            (from, to),
            None,
            1_000,
            &all(),
        )
        .await
        .unwrap();
    assert!(odd.iter().all(|e| e.name == "odd") && !odd.is_empty());
    assert!(
        store
            .scan(t, Some(&[]), (from, to), None, 10, &all())
            .await
            .unwrap()
            .is_empty()
    );
}

fn by(name: &str, at: i64, user: &str) -> NewEvent {
    let mut e = event(name, at);
    e.distinct_id = Some(user.into());
    e
}

pub async fn minutes_and_hours_count_and_sketch_their_users(h: Harness) {
    let store = h.open().await;
    assert!(
        store.sketches_since() <= Timestamp::from_millis(0),
        "a new store keeps sketches from the start"
    );
    let (a, b) = (TenantId::new(), TenantId::new());
    let hour = NOW - NOW % 3_600_000 - 3 * 3_600_000;
    // Hour 1: 30 signups by users 0..10 over two minutes; hour 2: 5 signups by users 5..10
    // and one event without a user.
    let mut first: Vec<NewEvent> = (0..30)
        .map(|i| {
            by(
                "signup",
                hour + (i % 2) * 60_000 + i,
                &format!("u{}", i % 10),
            )
        })
        .collect();
    first.push(by("refund", hour + 5, "u0"));
    store.append(a, &first, None, now()).await.unwrap();
    // Batches written at once merge their sketches (no lost update).
    let racing: Vec<_> = (0..4)
        .map(|k| {
            let store = store.clone();
            tokio::spawn(async move {
                let batch: Vec<NewEvent> = (0..5)
                    .map(|i| {
                        by(
                            "signup",
                            hour + 3_600_000 + i,
                            &format!("u{}", 5 + (k + i) % 5),
                        )
                    })
                    .collect();
                store.append(a, &batch, None, now()).await.unwrap();
            })
        })
        .collect();
    for r in racing {
        r.await.unwrap();
    }
    let mut anonymous = event("signup", hour + 3_600_000 + 9);
    anonymous.distinct_id = None;
    store.append(a, &[anonymous], None, now()).await.unwrap();
    store
        .append(b, &[by("signup", hour + 1, "u99")], None, now())
        .await
        .unwrap();
    let range = (
        Timestamp::from_millis(hour),
        Timestamp::from_millis(hour + 2 * 3_600_000),
    );
    let signup = ["signup".to_owned()];
    let hours = store
        .rollups(a, Some(&signup), Grain::Hour, range, true)
        .await
        .unwrap();
    let seen: Vec<(i64, i64, u64)> = hours
        .iter()
        .map(|r| {
            (
                r.start.as_millis() - hour,
                r.count,
                r.users.as_ref().unwrap().estimate(),
            )
        })
        .collect();
    assert_eq!(seen, [(0, 30, 10), (3_600_000, 21, 5)]);
    // Minutes the same, at their grain; without sketches when not asked.
    let minutes = store
        .rollups(a, None, Grain::Minute, range, true)
        .await
        .unwrap();
    let seen: Vec<(i64, &str, i64, u64)> = minutes
        .iter()
        .map(|r| {
            (
                r.start.as_millis() - hour,
                r.name.as_str(),
                r.count,
                r.users.as_ref().unwrap().estimate(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (0, "refund", 1, 1),
            (0, "signup", 15, 5),
            (60_000, "signup", 15, 5),
            (3_600_000, "signup", 21, 5),
        ]
    );
    let bare = store
        .rollups(a, None, Grain::Minute, range, false)
        .await
        .unwrap();
    assert!(bare.iter().all(|r| r.users.is_none()) && bare.len() == 4);
    // Merged, the two hours' users are the union.
    let mut all = pingtower_analytics::sketch::Sketch::new();
    for r in &hours {
        all.merge(r.users.as_ref().unwrap());
    }
    assert_eq!(all.estimate(), 10);
    // The other tenant's rows are its own; deleting a tenant and pruning remove rows.
    let theirs = store
        .rollups(b, None, Grain::Hour, range, true)
        .await
        .unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].users.as_ref().unwrap().estimate(), 1);
    store
        .prune(Timestamp::from_millis(hour + 3_600_000), now())
        .await
        .unwrap();
    let left = store
        .rollups(a, None, Grain::Hour, range, false)
        .await
        .unwrap();
    assert_eq!(
        left.iter()
            .map(|r| r.start.as_millis() - hour)
            .collect::<Vec<_>>(),
        [3_600_000]
    );
    store.delete_tenant(a).await.unwrap();
    assert!(
        store
            .rollups(a, None, Grain::Minute, range, false)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Every page of a listing by name and of the scan, read page by page with the cursor.
async fn everything(
    store: &dyn pingtower_analytics::EventStore,
    t: TenantId,
    name: Option<&str>,
) -> (
    Vec<pingtower_analytics::store::StoredEvent>,
    Vec<pingtower_analytics::store::StoredEvent>,
) {
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list(t, name, cursor, 9).await.unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(Cursor::of);
        listed.extend(page);
    }
    let names = name.map(|n| vec![n.to_owned()]);
    let mut scanned = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .scan(
                t,
                names.as_deref(),
                (Timestamp::from_millis(0), Timestamp::from_millis(NOW + 1)),
                after,
                11,
                &all(),
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(Cursor::of);
        scanned.extend(page);
    }
    (listed, scanned)
}

pub async fn packing_moves_every_event_into_blocks_once(h: Harness) {
    let store = h.open().await;
    let (t, other) = (TenantId::new(), TenantId::new());
    let hour = 3_600_000;
    // Small batches over three hours and three names, out of order, with every kind of value.
    for b in 0..12i64 {
        let batch: Vec<NewEvent> = (0..25i64)
            .map(|i| {
                let mut e = by(
                    ["signup", "paid", "left"][((b + i) % 3) as usize],
                    NOW - ((b * 37_003 + i * 431_017) % (3 * hour)),
                    &format!("user-{}", (b * i) % 17),
                );
                e.session_id = (i % 4 == 0).then(|| format!("s{b}"));
                e.properties.insert("n".into(), json!(b * 1_000 - i));
                e.properties.insert("ok".into(), json!(i % 2 == 0));
                e
            })
            .collect();
        store.append(t, &batch, None, now()).await.unwrap();
        store.append(other, &batch[..3], None, now()).await.unwrap();
    }
    let before = everything(store.as_ref(), t, None).await;
    let paid = everything(store.as_ref(), t, Some("paid")).await;
    let counts = |s: std::sync::Arc<dyn pingtower_analytics::EventStore>| async move {
        s.minute_counts(t, None, Timestamp::from_millis(0), now().add_millis(1))
            .await
            .unwrap()
    };
    let counted = counts(store.clone()).await;
    assert_eq!(before.0.len(), 300);
    assert_eq!(before.1.len(), 300);
    let mut packed = 0;
    loop {
        let n = store.pack(13).await.unwrap();
        assert!(n <= 13);
        if n == 0 {
            break;
        }
        packed += n;
    }
    if !h.packed {
        assert_eq!(
            packed,
            300 + 36,
            "every event of both tenants is packed once"
        );
    }
    // Reclaiming the space of the rows packing replaced changes nothing that reads see.
    store.reclaim().await.unwrap();
    let after = everything(store.as_ref(), t, None).await;
    assert_eq!(
        after.0, before.0,
        "the listing is the same, event for event"
    );
    assert_eq!(after.1, before.1, "the scan is the same, event for event");
    assert_eq!(everything(store.as_ref(), t, Some("paid")).await, paid);
    // A scan asked for some columns gets at least those, exactly as stored.
    let want = pingtower_analytics::packed::Columns {
        distinct_id: true,
        session_id: false,
        properties: Some(vec!["n".into()]),
    };
    let narrow = store
        .scan(
            t,
            None,
            (Timestamp::from_millis(0), now().add_millis(1)),
            None,
            1_000,
            &want,
        )
        .await
        .unwrap();
    assert_eq!(narrow.len(), 300);
    for (n, full) in narrow.iter().zip(&after.1) {
        assert_eq!(
            (n.id, &n.name, &n.distinct_id),
            (full.id, &full.name, &full.distinct_id)
        );
        assert_eq!(n.properties.get("n"), full.properties.get("n"));
    }
    assert_eq!(counts(store.clone()).await, counted);
    assert!(
        after
            .0
            .windows(2)
            .all(|w| (w[0].timestamp, w[0].id) > (w[1].timestamp, w[1].id)),
        "newest first, no repeats"
    );
    // Packed events survive reopening, and the ids of new events are new.
    drop(store);
    let store = h.open().await;
    store
        .append(t, &[event("late", NOW)], None, now())
        .await
        .unwrap();
    let listed = store.list(t, None, None, 1_000).await.unwrap();
    assert_eq!(listed.len(), 301);
    let mut ids: Vec<i64> = listed.iter().map(|e| e.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 301, "no id is given twice");
    // Retention cuts through the middle of a packed hour.
    let cutoff = NOW - hour - hour / 2;
    let old = listed
        .iter()
        .filter(|e| {
            e.timestamp.as_millis()
                < pingtower_analytics::store::minute_of(Timestamp::from_millis(cutoff))
        })
        .count() as u64;
    assert!(old > 0);
    let others = store.list(other, None, None, 1_000).await.unwrap();
    let others_old = others
        .iter()
        .filter(|e| {
            e.timestamp.as_millis()
                < pingtower_analytics::store::minute_of(Timestamp::from_millis(cutoff))
        })
        .count() as u64;
    assert_eq!(
        store
            .prune(Timestamp::from_millis(cutoff), now())
            .await
            .unwrap(),
        old + others_old
    );
    let (kept, scanned) = everything(store.as_ref(), t, None).await;
    assert_eq!(kept.len() as u64, 301 - old);
    assert_eq!(scanned.len(), kept.len());
    // Deleting the tenant removes packed and staged events alike, and nothing of the other's.
    assert_eq!(store.delete_tenant(t).await.unwrap(), 301 - old);
    assert!(store.list(t, None, None, 10).await.unwrap().is_empty());
    assert_eq!(
        store.list(other, None, None, 1_000).await.unwrap().len() as u64,
        36 - others_old
    );
}

pub async fn packing_never_brings_back_what_a_deletion_removed(h: Harness) {
    let store = h.open().await;
    let kept = TenantId::new();
    store
        .append(kept, &[event("kept", NOW)], None, now())
        .await
        .unwrap();
    for round in 0..15i64 {
        let t = TenantId::new();
        let batch: Vec<NewEvent> = (0..300).map(|i| event("gone", NOW - i * 7_001)).collect();
        store.append(t, &batch, None, now()).await.unwrap();
        // Packing and deleting the tenant race, in either order.
        let (packer, deleter) = (store.clone(), store.clone());
        let pack = tokio::spawn(async move { packer.pack(10_000).await.unwrap() });
        if round % 2 == 0 {
            tokio::task::yield_now().await;
        }
        let deleted = deleter.delete_tenant(t).await.unwrap();
        pack.await.unwrap();
        assert_eq!(
            deleted, 300,
            "round {round}: every event is counted as deleted once"
        );
        assert!(
            store.list(t, None, None, 10).await.unwrap().is_empty(),
            "round {round}: a deleted tenant's events came back"
        );
        let (listed, scanned) = everything(store.as_ref(), t, None).await;
        assert!(listed.is_empty() && scanned.is_empty(), "round {round}");
    }
    assert_eq!(store.list(kept, None, None, 10).await.unwrap().len(), 1);
}

pub async fn a_query_reads_every_event_of_its_range_once(h: Harness) {
    use pingtower_analytics::query::{Aggregator, aggregate, read_query};
    let store = h.open().await;
    let (t, other) = (TenantId::new(), TenantId::new());
    let hour = 3_600_000;
    let start = NOW - NOW.rem_euclid(hour) - 4 * hour;
    // Four hours of events, two names, a third of them on another plan.
    let batch: Vec<NewEvent> = (0..240)
        .map(|i| {
            let mut e = event(if i % 2 == 0 { "a" } else { "b" }, start + i * 60_000);
            if i % 3 == 0 {
                e.properties.insert("plan".into(), json!("free"));
            }
            e
        })
        .collect();
    for chunk in batch.chunks(50) {
        store.append(t, chunk, None, now()).await.unwrap();
        store.append(other, chunk, None, now()).await.unwrap();
    }
    // From the middle of the first hour (blocks of that hour hold events outside the range)
    // to the end of the third.
    let (from, to) = (start + hour / 2, start + 3 * hour);
    let q = read_query(
        json!({"metric": "count", "bucket": "minute", "from": from, "to": to, "breakdown": "name",
               "filters": [{"property": "plan", "op": "eq", "value": "pro"}]})
        .as_object()
        .unwrap()
        .clone(),
        now(),
    )
    .unwrap();
    let q = std::sync::Arc::new(q);
    let agg = aggregate(store.as_ref(), t, Aggregator::new(q.clone()))
        .await
        .unwrap();
    let series = agg.finish().unwrap();
    let counted = |key: &str| -> u64 {
        series
            .iter()
            .filter(|s| s.key == key)
            .flat_map(|s| &s.points)
            .filter_map(|p| p.value.as_ref().and_then(serde_json::Number::as_u64))
            .sum()
    };
    let expected = |name: &str| {
        batch
            .iter()
            .filter(|e| {
                e.name == name
                    && e.properties["plan"] == "pro"
                    && (from..to).contains(&e.timestamp.as_millis())
            })
            .count() as u64
    };
    assert_eq!(counted("a"), expected("a"));
    assert_eq!(counted("b"), expected("b"));
    assert!(expected("a") > 0);
    // Names the query lists, and none.
    let mut only_b = (*q).clone();
    only_b.names = pingtower_analytics::query::NameFilter::Only(vec!["b".into()]);
    let series = aggregate(
        store.as_ref(),
        t,
        Aggregator::new(std::sync::Arc::new(only_b)),
    )
    .await
    .unwrap()
    .finish()
    .unwrap();
    assert!(series.iter().all(|s| s.key == "b"), "{series:?}");
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    store
        .pieces(
            t,
            Some(&[]),
            (Timestamp::from_millis(from), Timestamp::from_millis(to)),
            &all(),
            &tx,
        )
        .await
        .unwrap();
    drop(tx);
    assert!(rx.recv().await.is_none(), "no names: nothing read");
}

pub async fn busy_hours_and_single_events_share_one_id_space(h: Harness) {
    let store = h.open().await;
    let t = TenantId::new();
    let hour = 3_600_000;
    let start = NOW - NOW.rem_euclid(hour) - 2 * hour;
    let in_hour = |n: i64, offset: i64| -> Vec<NewEvent> {
        (0..n)
            .map(|i| event("busy", start + offset + (i * 7_919) % hour))
            .collect()
    };
    // A busy hour (a store may write it as a block at once) with a few events of the hour
    // before; then a few more in the busy hour; then another busy batch of it.
    let mut a = in_hour(300, 0);
    a.extend((0..5).map(|i| event("early", start - hour + i * 1_000)));
    let batches = [a, in_hour(5, 17), in_hour(300, 29)];
    for b in &batches {
        store.append(t, b, None, now()).await.unwrap();
    }
    let total: usize = batches.iter().map(Vec::len).sum();
    let read_all = |store: std::sync::Arc<dyn pingtower_analytics::EventStore>| async move {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.list(t, None, cursor, 97).await.unwrap();
            if page.is_empty() {
                return seen;
            }
            cursor = page.last().map(Cursor::of);
            seen.extend(page);
        }
    };
    let seen = read_all(store.clone()).await;
    assert_eq!(seen.len(), total);
    let ids: std::collections::HashSet<i64> = seen.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), total, "every event has an id of its own");
    assert!(
        seen.windows(2)
            .all(|w| (w[0].timestamp, w[0].id) > (w[1].timestamp, w[1].id))
    );
    while store.pack(1_000).await.unwrap() > 0 {}
    let after = read_all(store.clone()).await;
    assert_eq!(after, seen, "packing changes nothing a reader sees");
    let counted: i64 = store
        .minute_counts(
            t,
            None,
            Timestamp::from_millis(start - hour),
            Timestamp::from_millis(NOW),
        )
        .await
        .unwrap()
        .iter()
        .map(|m| m.count)
        .sum();
    assert_eq!(counted, total as i64);
    assert_eq!(store.delete_tenant(t).await.unwrap(), total as u64);
    assert!(store.list(t, None, None, 10).await.unwrap().is_empty());
}

pub async fn racing_busy_batches_of_one_hour_keep_every_event_once(h: Harness) {
    let store = h.open().await;
    let t = TenantId::new();
    let hour = 3_600_000;
    let start = NOW - NOW.rem_euclid(hour) - hour;
    // Rounds of four batches at once into one hour: each may merge the hour's blocks that
    // the others are writing or merging.
    let mut total = 0usize;
    for round in 0..4i64 {
        let tasks: Vec<_> = (0..4i64)
            .map(|k| {
                let store = store.clone();
                let batch: Vec<NewEvent> = (0..300)
                    .map(|i| event("busy", start + (round * 4 + k) * 1_000 + i))
                    .collect();
                total += batch.len();
                tokio::spawn(async move { store.append(t, &batch, None, now()).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list(t, None, cursor, 500).await.unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(Cursor::of);
        seen.extend(page);
    }
    let ids: std::collections::HashSet<i64> = seen.iter().map(|e| e.id).collect();
    assert_eq!((seen.len(), ids.len()), (total, total));
    while store.pack(1_000).await.unwrap() > 0 {}
    assert_eq!(store.delete_tenant(t).await.unwrap(), total as u64);
}

pub async fn a_damaged_block_never_stops_ingestion(h: Harness) {
    let store = h.open().await;
    let t = TenantId::new();
    let hour = 3_600_000;
    let start = NOW - NOW.rem_euclid(hour) - hour;
    let busy = |k: i64| -> Vec<NewEvent> {
        (0..300)
            .map(|i| event("busy", start + k * 1_000 + i))
            .collect()
    };
    let small = |k: i64| -> Vec<NewEvent> { (0..5).map(|i| event("few", start + k + i)).collect() };
    store.append(t, &busy(0), None, now()).await.unwrap();
    store.append(t, &small(100), None, now()).await.unwrap();
    while store.pack(1_000).await.unwrap() > 0 {}
    h.execute(if h.is_postgres() {
        "UPDATE analytics_blocks SET data = '\\x0001'::bytea"
    } else {
        "UPDATE analytics_blocks SET data = x'0001'"
    })
    .await;
    // Batches and packing rounds of that hour go on (the damaged block is left as it is,
    // never merged), and a reading that meets it says so.
    for k in 1..6 {
        store.append(t, &busy(k), None, now()).await.unwrap();
        store.append(t, &small(200 + k), None, now()).await.unwrap();
        while store.pack(1_000).await.unwrap() > 0 {}
    }
    assert!(store.list(t, None, None, 10_000).await.is_err());
}

/// Batches racing into the same minutes with many names (more than a PostgreSQL minute row
/// holds, so some are counted a row each), and later batches adding to both kinds: every
/// (minute, name) counts each event once, with its users, through every reading and removal.
pub async fn racing_batches_of_many_names_count_every_minute_once(h: Harness) {
    let store = h.open().await;
    let (t, other) = (TenantId::new(), TenantId::new());
    let minute = NOW - NOW % 60_000 - 3_600_000;
    // Batch k: names 20k..20k+30 (neighbours overlap), two events each in two minutes, by
    // users k and k+1.
    let batch = move |k: i64| -> Vec<NewEvent> {
        let mut events = Vec::new();
        for n in 20 * k..20 * k + 30 {
            for m in [0, 60_000] {
                for u in [k, k + 1] {
                    events.push(by(
                        &format!("name-{n:03}"),
                        minute + m + n,
                        &format!("u{u}"),
                    ));
                }
            }
        }
        events
    };
    let racing: Vec<_> = (0..6)
        .map(|k| {
            let store = store.clone();
            tokio::spawn(async move { store.append(t, &batch(k), None, now()).await })
        })
        .collect();
    for r in racing {
        r.await.unwrap().unwrap();
    }
    store.append(other, &batch(0), None, now()).await.unwrap();
    // Then names counted before (in either place) and new ones, in one batch.
    let later: Vec<NewEvent> = (0..140)
        .step_by(7)
        .map(|n| by(&format!("name-{n:03}"), minute + n, "u9"))
        .collect();
    store.append(t, &later, None, now()).await.unwrap();

    // What each (minute, name) should hold: events and distinct users.
    let mut expected: std::collections::BTreeMap<
        (i64, String),
        (i64, std::collections::BTreeSet<String>),
    > = Default::default();
    for e in (0..6).flat_map(batch).chain(later) {
        let slot = expected
            .entry((
                e.timestamp.as_millis() - e.timestamp.as_millis() % 60_000,
                e.name.clone(),
            ))
            .or_default();
        slot.0 += 1;
        slot.1.insert(e.distinct_id.clone().unwrap());
    }
    assert!(
        expected.len() > 2 * 64,
        "more names a minute than a row holds"
    );
    let range = (
        Timestamp::from_millis(minute),
        Timestamp::from_millis(minute + 120_000),
    );
    let read = |users: bool| {
        let store = store.clone();
        async move {
            let rows = store
                .rollups(t, None, Grain::Minute, range, users)
                .await
                .unwrap();
            rows.into_iter()
                .map(|r| {
                    let users = r.users.map(|u| u.estimate());
                    ((r.start.as_millis(), r.name), (r.count, users))
                })
                .collect::<std::collections::BTreeMap<_, _>>()
        }
    };
    let with_users = read(true).await;
    assert_eq!(
        with_users.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "every (minute, name) once"
    );
    for (key, (count, users)) in &expected {
        let (c, u) = &with_users[key];
        assert_eq!(c, count, "{key:?}");
        assert_eq!(*u, Some(users.len() as u64), "{key:?}");
    }
    let counts = read(false).await;
    for (key, (count, _)) in &expected {
        assert_eq!(counts[key].0, *count, "{key:?}");
    }
    let total: i64 = expected.values().map(|(c, _)| c).sum();
    let totals = store.totals(t, None, Grain::Minute, range).await.unwrap();
    assert_eq!(totals.events, total);
    let named = store.names(t).await.unwrap();
    let distinct: std::collections::BTreeSet<&String> = expected.keys().map(|(_, n)| n).collect();
    assert_eq!(named.len(), distinct.len());
    assert_eq!(named.iter().map(|n| n.count).sum::<i64>(), total);
    let one = ["name-042".to_owned()];
    let rows = store
        .rollups(t, Some(&one), Grain::Minute, range, false)
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.count).sum::<i64>(),
        expected
            .iter()
            .filter(|((_, n), _)| n == "name-042")
            .map(|(_, (c, _))| c)
            .sum::<i64>()
    );

    // Retention removes the first minute, every name of it; deleting the tenant the rest,
    // and nothing of the other tenant's.
    store
        .prune(Timestamp::from_millis(minute + 60_000), now())
        .await
        .unwrap();
    let left = read(true).await;
    assert!(left.keys().all(|(m, _)| *m == minute + 60_000));
    assert_eq!(
        left.len(),
        expected
            .keys()
            .filter(|(m, _)| *m == minute + 60_000)
            .count()
    );
    store.delete_tenant(t).await.unwrap();
    assert!(read(true).await.is_empty());
    assert!(store.names(t).await.unwrap().is_empty());
    assert_eq!(store.names(other).await.unwrap().len(), 30);
}
