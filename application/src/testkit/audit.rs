//! The `AuditSink` + `AuditQuery` contract.
//!
//! ```ignore
//! qudag_application::audit_contract!(make_sink); // async fn make_sink() -> Arc<impl AuditSink + AuditQuery>
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;

use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, AuditRecord, ChainHead, ChainedEvent, Outcome, verify_chain};

use crate::ports::{AuditFilter, AuditQuery, AuditSink, AuditSinkError};

fn record(i: u64, action: AuditAction, outcome: Outcome, actor: &str) -> AuditRecord {
    AuditRecord::new(Timestamp::from_secs(1_000 + i), action, outcome)
        .actor(actor)
        .target(format!("target-{i}"))
        .request_id(format!("req-{i}"))
        .details(serde_json::json!({ "i": i }))
}

async fn all<A: AuditQuery + ?Sized>(sink: &A, filter: &AuditFilter) -> Vec<ChainedEvent> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = sink.query(filter, cursor, 3).await.expect("query");
        out.extend(page.events);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

/// Records are chained in order from the genesis and the chain verifies.
pub async fn records_form_a_valid_chain<A: AuditSink + AuditQuery>(sink: Arc<A>) {
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(sink.record(record(i, AuditAction::ToolCalled, Outcome::Success, "alice")).await.expect("record"));
    }
    assert_eq!(acked.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    verify_chain(ChainHead::GENESIS, &acked).expect("acknowledged events verify");
    let stored = all(sink.as_ref(), &AuditFilter::default()).await;
    assert_eq!(stored, acked, "stored events are exactly the acknowledged ones, in order");
    sink.flush().await.expect("flush");
}

/// Concurrent writers get distinct, gapless sequence numbers and one valid chain.
pub async fn concurrent_records_stay_one_chain<A: AuditSink + AuditQuery>(sink: Arc<A>) {
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let sink = sink.clone();
            tokio::spawn(async move { sink.record(record(i, AuditAction::ToolCalled, Outcome::Success, "bob")).await })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for t in tasks {
        seqs.insert(t.await.expect("task").expect("record").seq);
    }
    assert_eq!(seqs, (0..50).collect::<BTreeSet<_>>());
    let stored = all(sink.as_ref(), &AuditFilter::default()).await;
    assert_eq!(stored.len(), 50);
    verify_chain(ChainHead::GENESIS, &stored).expect("stored chain verifies");
}

/// A batch is recorded whole, in order, continuing the chain of single records.
pub async fn batches_continue_the_chain<A: AuditSink + AuditQuery>(sink: Arc<A>) {
    let first = sink.record(record(0, AuditAction::ServerStarted, Outcome::Success, "system")).await.expect("record");
    let batch = (1..=6).map(|i| record(i, AuditAction::ToolCalled, Outcome::Success, "carol")).collect::<Vec<_>>();
    let outcome = sink.record_batch(batch.clone()).await;
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    assert_eq!(outcome.recorded.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=6).collect::<Vec<_>>());
    assert_eq!(
        outcome.recorded.iter().map(|e| e.record.target.clone()).collect::<Vec<_>>(),
        batch.iter().map(|r| r.target.clone()).collect::<Vec<_>>()
    );
    assert!(sink.record_batch(Vec::new()).await.recorded.is_empty(), "an empty batch records nothing");
    let last = sink.record(record(7, AuditAction::ServerStopped, Outcome::Success, "system")).await.expect("record");
    assert_eq!(last.seq, 7);
    let stored = all(sink.as_ref(), &AuditFilter::default()).await;
    let mut expected = vec![first];
    expected.extend(outcome.recorded);
    expected.push(last);
    assert_eq!(stored, expected);
    verify_chain(ChainHead::GENESIS, &stored).expect("stored chain verifies");
}

/// Each filter field narrows the result; fields combine with AND.
pub async fn query_filters_match<A: AuditSink + AuditQuery>(sink: Arc<A>) {
    let plan = [
        (AuditAction::AuthFailed, Outcome::Denied, "mallory"),
        (AuditAction::ToolCalled, Outcome::Success, "alice"),
        (AuditAction::ToolCalled, Outcome::Failure, "alice"),
        (AuditAction::ToolDenied, Outcome::Denied, "bob"),
        (AuditAction::ToolCalled, Outcome::Success, "bob"),
        (AuditAction::SessionCreated, Outcome::Success, "alice"),
    ];
    for (i, (action, outcome, actor)) in plan.iter().enumerate() {
        sink.record(record(i as u64, *action, *outcome, actor)).await.expect("record");
    }
    let seqs = |events: Vec<ChainedEvent>| events.into_iter().map(|e| e.seq).collect::<Vec<_>>();

    let by_action = AuditFilter { action: Some(AuditAction::ToolCalled), ..Default::default() };
    assert_eq!(seqs(all(sink.as_ref(), &by_action).await), vec![1, 2, 4]);
    let by_actor = AuditFilter { actor: Some("alice".into()), ..Default::default() };
    assert_eq!(seqs(all(sink.as_ref(), &by_actor).await), vec![1, 2, 5]);
    let by_outcome = AuditFilter { outcome: Some(Outcome::Denied), ..Default::default() };
    assert_eq!(seqs(all(sink.as_ref(), &by_outcome).await), vec![0, 3]);
    let by_time = AuditFilter {
        from: Some(Timestamp::from_secs(1_002)),
        to: Some(Timestamp::from_secs(1_005)),
        ..Default::default()
    };
    assert_eq!(seqs(all(sink.as_ref(), &by_time).await), vec![2, 3, 4]);
    let combined =
        AuditFilter { actor: Some("bob".into()), action: Some(AuditAction::ToolCalled), ..Default::default() };
    assert_eq!(seqs(all(sink.as_ref(), &combined).await), vec![4]);
    let none = AuditFilter { actor: Some("nobody".into()), ..Default::default() };
    assert!(all(sink.as_ref(), &none).await.is_empty());
}

/// Paging walks every match once, oldest first, and ends with no cursor.
pub async fn paging_is_complete_and_ordered<A: AuditSink + AuditQuery>(sink: Arc<A>) {
    for i in 0..8 {
        let outcome = if i % 2 == 0 { Outcome::Success } else { Outcome::Failure };
        sink.record(record(i, AuditAction::ToolCalled, outcome, "alice")).await.expect("record");
    }
    let first = sink.query(&AuditFilter::default(), None, 3).await.expect("query");
    assert_eq!(first.events.len(), 3);
    assert!(first.next_cursor.is_some());
    let all_events = all(sink.as_ref(), &AuditFilter::default()).await;
    assert_eq!(all_events.iter().map(|e| e.seq).collect::<Vec<_>>(), (0..8).collect::<Vec<_>>());
    let success = AuditFilter { outcome: Some(Outcome::Success), ..Default::default() };
    let paged = all(sink.as_ref(), &success).await;
    assert_eq!(paged.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 2, 4, 6]);
    let exact = sink.query(&AuditFilter::default(), None, 8).await.expect("query");
    assert_eq!(exact.events.len(), 8);
    if let Some(cursor) = exact.next_cursor {
        let rest = sink.query(&AuditFilter::default(), Some(cursor), 8).await.expect("query");
        assert!(rest.events.is_empty() && rest.next_cursor.is_none());
    }
}

/// A cursor the sink never handed out is refused, not misread.
pub async fn foreign_cursors_are_refused<A: AuditSink + AuditQuery>(sink: Arc<A>) {
    sink.record(record(0, AuditAction::ToolCalled, Outcome::Success, "alice")).await.expect("record");
    for bad in ["", "not-a-cursor", "-1", "99999999999999999999999"] {
        let result = sink.query(&AuditFilter::default(), Some(bad.to_owned()), 10).await;
        assert!(matches!(result, Err(AuditSinkError::InvalidCursor(_))), "{bad:?}: {result:?}");
    }
}

/// Expand the audit contract into one `#[tokio::test]` per check.
///
/// `$make` is an async function returning a fresh, empty sink that also implements
/// `AuditQuery`.
#[macro_export]
macro_rules! audit_contract {
    ($make:path) => {
        $crate::__contract_tests!($crate::testkit::audit, $make;
            records_form_a_valid_chain,
            concurrent_records_stay_one_chain,
            batches_continue_the_chain,
            query_filters_match,
            paging_is_complete_and_ordered,
            foreign_cursors_are_refused,
        );
    };
}
