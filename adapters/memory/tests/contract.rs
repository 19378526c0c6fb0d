//! The shared port contracts, run against the in-memory adapters.

use std::sync::Arc;

use qudag_adapter_memory::{
    MemoryAuditSink, MemoryEventBus, MemoryEventStore, MemoryMembership, MemoryNameRegistry, MemoryRateLimiter,
    MemorySessionStore, MemoryVaultStore,
};
use qudag_application::ports::{
    EventBus, EventStore, Membership, NameRegistry, RateLimiter, SessionStore, SystemClock, VaultStore,
};

async fn session_store() -> Arc<dyn SessionStore> {
    Arc::new(MemorySessionStore::new(10_000, Arc::new(SystemClock::new())))
}

async fn rate_limiter() -> Arc<dyn RateLimiter> {
    Arc::new(MemoryRateLimiter::new(10_000, Arc::new(SystemClock::new())))
}

async fn audit_sink() -> Arc<MemoryAuditSink> {
    Arc::new(MemoryAuditSink::new(10_000))
}

async fn event_bus() -> Arc<dyn EventBus> {
    Arc::new(MemoryEventBus::default())
}

mod session_store {
    qudag_application::session_store_contract!(super::session_store);
}

mod rate_limiter {
    qudag_application::rate_limiter_contract!(super::rate_limiter);
}

mod audit {
    qudag_application::audit_contract!(super::audit_sink);
}

mod event_bus {
    qudag_application::event_bus_contract!(super::event_bus);
}

async fn event_store() -> Arc<dyn EventStore> {
    Arc::new(MemoryEventStore::default())
}

mod event_store {
    qudag_application::event_store_contract!(super::event_store);
}

async fn vault_store() -> Arc<dyn VaultStore> {
    Arc::new(MemoryVaultStore::new(10_000))
}

mod vault_store {
    qudag_application::vault_store_contract!(super::vault_store);
}

async fn name_registry() -> Arc<dyn NameRegistry> {
    Arc::new(MemoryNameRegistry::new(10_000))
}

mod name_registry {
    qudag_application::name_registry_contract!(super::name_registry);
}

async fn membership() -> Arc<dyn Membership> {
    Arc::new(MemoryMembership::default())
}

mod membership {
    qudag_application::membership_contract!(super::membership);
}

#[tokio::test]
async fn the_null_audit_sink_chains_and_keeps_nothing() {
    use qudag_adapter_memory::NullAuditSink;
    use qudag_application::ports::{AuditFilter, AuditQuery, AuditSink};
    use qudag_domain::audit::{AuditAction, AuditRecord, Outcome};

    let sink = NullAuditSink::default();
    let record = || AuditRecord::new(qudag_domain::Timestamp::from_secs(1), AuditAction::ToolCalled, Outcome::Success);
    let first = sink.record(record()).await.unwrap();
    let second = sink.record(record()).await.unwrap();
    assert_eq!((first.seq, second.seq), (0, 1));
    assert_eq!(second.prev_hash, first.hash);
    assert!(sink.query(&AuditFilter::default(), None, 10).await.unwrap().events.is_empty());
    assert!(sink.query(&AuditFilter::default(), Some("seq:0".into()), 10).await.is_err());
}
