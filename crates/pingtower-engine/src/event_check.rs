//! Event monitors (`kind: event`): a worker counts the tenant's analytics events over the
//! monitor's window and judges the count against its condition. The result goes through the
//! same evaluator as every check, so incidents, rules, channels, maintenance windows and
//! acknowledgements work as for "the API is down".
//!
//! Counts come from the per-minute counts the events store writes with the events, so a check
//! costs one indexed read whatever the traffic. A late event is counted in the windows that
//! cover its minute from then on; a window already judged is never judged again.

use pingtower_analytics::EventStore;
use pingtower_checks::Outcome;
use pingtower_core::event_rule::EventRule;
use pingtower_core::{CheckStatus, TenantId, Timestamp};
use serde_json::json;
use std::time::{Duration, Instant};

fn down(reason: impl Into<String>) -> Outcome {
    Outcome {
        status: CheckStatus::Down,
        latency_us: 0,
        reason: Some(reason.into()),
        details: json!({}),
    }
}

/// Judges `rule` for `tenant` at `now`, within `timeout`.
pub async fn run(
    store: Option<&dyn EventStore>,
    tenant: TenantId,
    rule: &EventRule,
    now: Timestamp,
    timeout: Duration,
) -> Outcome {
    let Some(store) = store else {
        return down("this worker has no events database to count events in");
    };
    let (from, to) = rule.window(now);
    let started = Instant::now();
    // Summed by the database: one row back, whatever the traffic. A filter that excludes
    // names is everything minus them.
    let counted = async {
        use pingtower_core::event_rule::NameFilter;
        match &rule.names {
            NameFilter::All => Ok(store.minute_totals(tenant, None, from, to).await?.events),
            NameFilter::Only(names) => Ok(store
                .minute_totals(tenant, Some(names), from, to)
                .await?
                .events),
            NameFilter::AllBut(names) => {
                let all = store.minute_totals(tenant, None, from, to).await?.events;
                let not = store
                    .minute_totals(tenant, Some(names), from, to)
                    .await?
                    .events;
                Ok::<i64, pingtower_analytics::EventStoreError>(all - not)
            }
        }
    };
    let count = match tokio::time::timeout(timeout, counted).await {
        Ok(Ok(count)) => count,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "counting events for an event monitor failed");
            return down("the events database could not be read (logged)");
        }
        Err(_) => {
            return down(format!(
                "the events database did not answer within {} ms",
                timeout.as_millis()
            ));
        }
    };
    let (breached, reason) = rule.judge(count);
    Outcome {
        status: if breached {
            CheckStatus::Down
        } else {
            CheckStatus::Up
        },
        latency_us: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
        reason: breached.then_some(reason),
        details: json!({"event": {
            "count": count,
            "threshold": rule.threshold,
            "minutes": rule.minutes,
            "from": from,
            "to": to,
        }}),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use pingtower_analytics::NewEvent;
    use serde_json::Value;

    fn rule(v: Value) -> EventRule {
        EventRule::read(v.as_object().unwrap()).unwrap()
    }

    fn event(name: &str, at: i64) -> NewEvent {
        NewEvent {
            name: name.into(),
            timestamp: Timestamp::from_millis(at),
            distinct_id: None,
            session_id: None,
            properties: Default::default(),
        }
    }

    #[tokio::test]
    async fn counts_the_last_complete_minutes_of_the_tenants_events_only() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("events.db").display());
        let store = pingtower_analytics::store::open(&url).await.unwrap();
        let (t, other) = (TenantId::new(), TenantId::new());
        // 10:30:20; the last complete 5 minutes are 10:25 to 10:30.
        let now = 1_795_000_000_000 - 1_795_000_000_000 % 60_000 + 20_000;
        let minute = now - now % 60_000;
        let mut batch: Vec<NewEvent> = (0..12)
            .map(|i| event("payment_failed", minute - 60_000 - i))
            .collect();
        batch.push(event("payment_failed", minute + 1_000)); // this minute: not yet
        batch.push(event("payment_failed", minute - 6 * 60_000)); // before the window
        batch.push(event("order_placed", minute - 60_000));
        store
            .append(t, &batch, None, Timestamp::from_millis(now))
            .await
            .unwrap();
        let noise: Vec<NewEvent> = (0..50)
            .map(|_| event("payment_failed", minute - 60_000))
            .collect();
        store
            .append(other, &noise, None, Timestamp::from_millis(now))
            .await
            .unwrap();
        let at = Timestamp::from_millis(now);
        let limit = Duration::from_secs(5);
        let above = rule(serde_json::json!({
            "query": {"filters": [{"property": "name", "op": "eq", "value": "payment_failed"}]},
            "condition": {"op": "above", "threshold": 10, "minutes": 5}}));
        let o = run(Some(store.as_ref()), t, &above, at, limit).await;
        assert_eq!(o.status, CheckStatus::Down);
        assert_eq!(
            o.reason.as_deref(),
            Some("12 payment_failed in the last 5 min, above 10")
        );
        assert_eq!(o.details["event"]["count"], 12);
        // The other tenant's 50 do not count; nor do the names not asked for.
        let o = run(Some(store.as_ref()), other, &above, at, limit).await;
        assert_eq!(o.details["event"]["count"], 50);
        let absent = rule(serde_json::json!({
            "query": {"filters": [{"property": "name", "op": "eq", "value": "signup"}]},
            "condition": {"op": "absent", "minutes": 15}}));
        let o = run(Some(store.as_ref()), t, &absent, at, limit).await;
        assert_eq!(o.reason.as_deref(), Some("no signup for 15 min"));
        let all_but = rule(serde_json::json!({
            "query": {"filters": [{"property": "name", "op": "neq", "value": "payment_failed"}]},
            "condition": {"op": "below", "threshold": 1, "minutes": 5}}));
        let o = run(Some(store.as_ref()), t, &all_but, at, limit).await;
        assert_eq!(o.status, CheckStatus::Up, "{:?}", o.reason);
        assert_eq!(o.details["event"]["count"], 1);
        // Without an events database the monitor says why it cannot be judged.
        let o = run(None, t, &above, at, limit).await;
        assert!(o.reason.unwrap().contains("no events database"));
    }
}
