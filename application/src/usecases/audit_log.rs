//! Reading the audit trail over `GET /admin/audit`: filters by time range, actor, action
//! and outcome, oldest first, in pages with an opaque cursor.
//!
//! Callers reach it through `AdminService::read_audit`:
//! admitted, authorized (`audit:read`: roles auditor and admin) and itself audited.

use std::sync::Arc;

use qudag_domain::Timestamp;
use qudag_domain::audit::{AuditAction, ChainedEvent, Outcome};
use serde::Deserialize;
use serde_json::{Value, json};

use super::endpoints::AdminError;
use crate::ports::{AuditFilter, AuditQuery, AuditSinkError};
/// The default page size.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest page size.
pub const MAX_LIMIT: usize = 1000;

/// What `GET /admin/audit` asks for (its query parameters). A parameter given empty means
/// the same as one left out.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct AuditRequest {
    /// RFC 3339: events at or after (an instant before 1970: from the first event).
    pub from: Option<String>,
    /// RFC 3339: events before. A range that ends where it starts, or before, is empty.
    pub to: Option<String>,
    /// Exactly this actor (`issuer#subject`).
    pub actor: Option<String>,
    /// Exactly this action (`tool.called`, `auth.failed`, ...).
    pub action: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Events per page (1–1000, default 100).
    pub limit: Option<usize>,
}

/// The audit reader.
#[derive(Clone)]
pub struct AuditReader {
    query: Arc<dyn AuditQuery>,
}

impl std::fmt::Debug for AuditReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditReader").finish_non_exhaustive()
    }
}

fn invalid(argument: &str, message: impl Into<String>) -> AdminError {
    AdminError::invalid(argument, message)
}

fn time(argument: &str, text: Option<&str>) -> Result<Option<Timestamp>, AdminError> {
    text.map(|t| {
        Timestamp::parse_rfc3339_clamped(t)
            .ok_or_else(|| invalid(argument, format!("{t:?} is not an RFC 3339 date-time")))
    })
    .transpose()
}

/// A parameter's value, `None` when it is absent or empty.
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

impl AuditRequest {
    /// The filter, page size and cursor this asks for.
    ///
    /// # Errors
    /// [`AdminError::InvalidArgument`] naming the bad parameter.
    pub fn parse(self) -> Result<(AuditFilter, usize, Option<String>), AdminError> {
        let (from, to, actor) = (given(self.from), given(self.to), given(self.actor));
        let (action, outcome, cursor) = (given(self.action), given(self.outcome), given(self.cursor));
        let action = match action.as_deref() {
            Some(a) => Some(AuditAction::parse(a).ok_or_else(|| {
                let known: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
                invalid("action", format!("unknown action {a:?}; expected one of {}", known.join(", ")))
            })?),
            None => None,
        };
        let outcome = match outcome.as_deref() {
            Some("success") => Some(Outcome::Success),
            Some("failure") => Some(Outcome::Failure),
            Some("denied") => Some(Outcome::Denied),
            Some(o) => return Err(invalid("outcome", format!("{o:?}: expected success, failure or denied"))),
            None => None,
        };
        let filter = AuditFilter {
            from: time("from", from.as_deref())?,
            to: time("to", to.as_deref())?,
            actor,
            action,
            outcome,
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(invalid("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        Ok((filter, limit, cursor))
    }
}

/// One event as the endpoint shows it.
pub fn event_json(e: &ChainedEvent) -> Value {
    let r = &e.record;
    json!({
        "seq": e.seq,
        "at": r.at.to_rfc3339(),
        "action": r.action.as_str(),
        "outcome": r.outcome,
        "actor": r.actor,
        "target": r.target,
        "request_id": r.request_id,
        "client_addr": r.client_addr,
        "node": r.node,
        "details": r.details,
        "prev_hash": e.prev_hash.to_string(),
        "hash": e.hash.to_string(),
    })
}

impl AuditReader {
    /// A reader over `query`.
    pub fn new(query: Arc<dyn AuditQuery>) -> Self {
        Self { query }
    }
}

impl AuditReader {
    /// The latest signed checkpoint of each node in the trail, in node order: what a witness
    /// keeps to notice records cut off the trail's end later (`audit verify --expect-head`).
    ///
    /// # Errors
    /// [`AdminError::Failed`] when the trail cannot be read.
    pub async fn heads(&self) -> Result<Value, AdminError> {
        let filter = AuditFilter { action: Some(AuditAction::Checkpoint), ..AuditFilter::default() };
        let failed = |e: AuditSinkError| AdminError::Failed(format!("the audit trail cannot be read: {e}"));
        let mut latest: std::collections::BTreeMap<Option<String>, ChainedEvent> = std::collections::BTreeMap::new();
        let mut cursor = None;
        loop {
            let page = self.query.query(&filter, cursor, MAX_LIMIT).await.map_err(failed)?;
            for event in page.events {
                if event.record.details["phase"] == "signature" {
                    latest.insert(event.record.node.clone(), event);
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let heads: Vec<Value> = latest
            .values()
            .map(|e| {
                let d = &e.record.details;
                json!({
                    "node": e.record.node,
                    "seq": e.seq,
                    "hash": e.hash.to_string(),
                    "at": e.record.at.to_rfc3339(),
                    "covers_seq": d["covers_seq"],
                    "covers_hash": d["covers_hash"],
                    "algorithm": d["algorithm"],
                    "key_id": d["key_id"],
                    "signature": d["signature"],
                    "expect_head": format!("{}:{}", e.seq, e.hash),
                })
            })
            .collect();
        Ok(json!({ "checkpoints": heads }))
    }

    /// The page `request` asks for, as the endpoint shows it.
    ///
    /// # Errors
    /// [`AdminError::InvalidArgument`] naming a bad parameter; [`AdminError::NotFound`] for a
    /// cursor this server did not hand out;
    /// [`AdminError::Failed`] when the trail cannot be read.
    pub async fn page(&self, request: AuditRequest) -> Result<Value, AdminError> {
        let (filter, limit, cursor) = request.parse()?;
        let page = self.query.query(&filter, cursor, limit).await.map_err(|e| match e {
            AuditSinkError::InvalidCursor(c) => {
                AdminError::not_found("cursor", format!("{c:?} is not a cursor this server handed out"))
            }
            other => AdminError::Failed(format!("the audit trail cannot be read: {other}")),
        })?;
        Ok(json!({
            "events": page.events.iter().map(event_json).collect::<Vec<_>>(),
            "next_cursor": page.next_cursor,
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_and_name_the_bad_one() {
        let ok = AuditRequest {
            from: Some("2026-11-24T00:00:00Z".into()),
            to: Some("2026-11-25T00:00:00Z".into()),
            action: Some("tool.called".into()),
            outcome: Some("denied".into()),
            limit: Some(5),
            ..AuditRequest::default()
        };
        let (filter, limit, cursor) = ok.parse().unwrap();
        assert_eq!(filter.action, Some(AuditAction::ToolCalled));
        assert_eq!(filter.outcome, Some(Outcome::Denied));
        assert_eq!((limit, cursor), (5, None));
        let bad = |r: AuditRequest, arg: &str| match r.parse() {
            Err(AdminError::InvalidArgument { argument, .. }) => assert_eq!(argument, arg),
            other => panic!("{arg}: {other:?}"),
        };
        bad(AuditRequest { from: Some("yesterday".into()), ..AuditRequest::default() }, "from");
        bad(AuditRequest { action: Some("tool.exploded".into()), ..AuditRequest::default() }, "action");
        bad(AuditRequest { outcome: Some("meh".into()), ..AuditRequest::default() }, "outcome");
        bad(AuditRequest { limit: Some(0), ..AuditRequest::default() }, "limit");
        bad(AuditRequest { limit: Some(1001), ..AuditRequest::default() }, "limit");
    }

    #[test]
    fn empty_parameters_are_absent_and_ranges_may_be_empty() {
        let empty = AuditRequest {
            from: Some(String::new()),
            to: Some(String::new()),
            actor: Some(String::new()),
            action: Some(String::new()),
            outcome: Some(String::new()),
            cursor: Some(String::new()),
            limit: None,
        };
        let (filter, limit, cursor) = empty.parse().unwrap();
        assert_eq!(filter, AuditFilter::default());
        assert_eq!((limit, cursor), (DEFAULT_LIMIT, None));

        // An empty or reversed range is a range with nothing in it, not a mistake.
        let reversed = AuditRequest {
            from: Some("2026-11-25T00:00:00Z".into()),
            to: Some("2026-11-24T00:00:00Z".into()),
            ..AuditRequest::default()
        };
        let (filter, _, _) = reversed.parse().unwrap();
        assert!(filter.to < filter.from);

        // Before 1970: from the beginning.
        let early = AuditRequest { from: Some("1900-01-01T00:00:00Z".into()), ..AuditRequest::default() };
        assert_eq!(early.parse().unwrap().0.from, Some(Timestamp::UNIX_EPOCH));
    }
}
