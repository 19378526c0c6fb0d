//! Behaviour of the PostgreSQL adapters beyond the shared contracts: migrations, schemas,
//! failures, and storage details.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use qudag_adapter_postgres::{
    DbErr, Migrator, MigratorTrait, PgError, PgOptions, PostgresHealth, PostgresNameRegistry, PostgresVaultStore,
    connect, migrate,
};
use qudag_application::ports::{
    HealthIndicator, HealthStatus, NameRegistry, NameRegistryError, VaultListQuery, VaultStore, VaultStoreError,
};
use qudag_application::testkit::name_registry::{fresh_name, sample_record};
use qudag_application::testkit::vault_store::{QUOTA, owner, sample_entry};
use qudag_domain::Timestamp;
use sea_orm::{ConnectionTrait, Statement};
use support::TestDb;

const T: Timestamp = Timestamp::from_micros(1_790_000_000_123_457);

async fn count(db: &TestDb, sql: &str) -> i64 {
    let row = db.db.query_one_raw(Statement::from_string(db.db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get_by_index(0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_twice_are_a_no_op() {
    let db = TestDb::new().await;
    let store = PostgresVaultStore::new(db.db.clone());
    let entry = sample_entry(&owner(), "kept", T);
    store.put(&entry, T, QUOTA).await.unwrap();
    migrate(&db.db).await.unwrap();
    migrate(&db.db).await.unwrap();
    assert_eq!(store.get(&entry.id, T).await.unwrap(), Some(entry), "data survives re-running migrations");
    let applied = count(&db, "SELECT count(*) FROM seaql_migrations").await;
    assert_eq!(applied, Migrator::migrations().len() as i64);
    assert!(Migrator::get_pending_migrations(&db.db).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_queue_and_all_succeed() {
    let db = TestDb::unmigrated().await;
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let conn = db.db.clone();
            tokio::spawn(async move { migrate(&conn).await })
        })
        .collect();
    for run in runs {
        run.await.unwrap().unwrap();
    }
    let applied = count(&db, "SELECT count(*) FROM seaql_migrations").await;
    assert_eq!(applied, Migrator::migrations().len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_land_in_the_configured_schema() {
    let db = TestDb::new().await;
    let sql = format!(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = '{}' \
         AND table_name IN ('vault_entries', 'name_records', 'seaql_migrations')",
        db.schema
    );
    assert_eq!(count(&db, &sql).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrating_a_missing_schema_says_to_create_it() {
    let db = TestDb::unmigrated().await;
    let missing = format!("{}_missing", db.schema);
    let conn = connect(&db.url, PgOptions::default().schema(&missing)).await.unwrap();
    let err = migrate(&conn).await.unwrap_err();
    assert!(matches!(&err, DbErr::Custom(m) if m.contains("create the schema first")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_envelopes_are_returned_as_stored() {
    let db = TestDb::new().await;
    let store = PostgresVaultStore::new(db.db.clone());
    let alice = owner();
    let entry = sample_entry(&alice, "tampered", T);
    store.put(&entry, T, QUOTA).await.unwrap();
    let edit = format!("UPDATE vault_entries SET envelope = '\\xdeadbeef'::bytea WHERE id = '{}'", entry.id);
    assert_eq!(db.db.execute_unprepared(&edit).await.unwrap().rows_affected(), 1);
    let read = store.get(&entry.id, T).await.unwrap().unwrap();
    assert_eq!(read.envelope, vec![0xde, 0xad, 0xbe, 0xef], "the store does not judge content");
    let mut expected = entry.clone();
    expected.envelope = vec![0xde, 0xad, 0xbe, 0xef];
    assert_eq!(read, expected, "every other field is untouched");
    assert_eq!(store.find_by_label(&alice, "tampered", T).await.unwrap(), Some(read));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_name_records_are_returned_as_stored() {
    let db = TestDb::new().await;
    let registry = PostgresNameRegistry::new(db.db.clone());
    let name = fresh_name();
    let record = sample_record(&name, "iss#alice", T);
    registry.register(&record, T, QUOTA).await.unwrap();
    let edit = format!("UPDATE name_records SET signature = '\\x00'::bytea WHERE name = '{}'", name.as_str());
    db.db.execute_unprepared(&edit).await.unwrap();
    let read = registry.resolve(&name, T).await.unwrap().unwrap();
    assert_eq!(read.signature, vec![0]);
    assert_eq!(read.body, record.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_keep_their_microseconds() {
    let db = TestDb::new().await;
    let store = PostgresVaultStore::new(db.db.clone());
    let mut entry = sample_entry(&owner(), "micro", T);
    entry.expires_at = Some(Timestamp::from_micros(T.as_micros() + 1));
    store.put(&entry, T, QUOTA).await.unwrap();
    assert_eq!(store.get(&entry.id, T).await.unwrap(), Some(entry.clone()));
    assert_eq!(
        store.get(&entry.id, Timestamp::from_micros(T.as_micros() + 1)).await.unwrap(),
        None,
        "expired 1 µs later"
    );

    let registry = PostgresNameRegistry::new(db.db.clone());
    let name = fresh_name();
    let mut record = sample_record(&name, "iss#alice", T);
    record.body.expires_at = Timestamp::from_micros(T.as_micros() + 999);
    registry.register(&record, T, QUOTA).await.unwrap();
    assert_eq!(registry.resolve(&name, Timestamp::from_micros(T.as_micros() + 998)).await.unwrap(), Some(record));
    assert_eq!(registry.resolve(&name, Timestamp::from_micros(T.as_micros() + 999)).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_future_expiry_is_stored_as_the_largest_bigint() {
    let db = TestDb::new().await;
    let store = PostgresVaultStore::new(db.db.clone());
    let mut entry = sample_entry(&owner(), "forever", T);
    entry.expires_at = Some(Timestamp::from_micros(u64::MAX));
    store.put(&entry, T, QUOTA).await.unwrap();
    let read = store.get(&entry.id, T).await.unwrap().unwrap();
    assert_eq!(read.expires_at, Some(Timestamp::from_micros(i64::MAX as u64)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replacements_of_an_expired_label_have_one_winner() {
    let db = TestDb::new().await;
    let store = std::sync::Arc::new(PostgresVaultStore::new(db.db.clone()));
    let alice = owner();
    let mut old = sample_entry(&alice, "rotating", T);
    old.expires_at = Some(Timestamp::from_micros(T.as_micros() + 10));
    store.put(&old, T, QUOTA).await.unwrap();
    let later = Timestamp::from_micros(T.as_micros() + 10);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, alice) = (store.clone(), alice.clone());
            tokio::spawn(async move { store.put(&sample_entry(&alice, "rotating", later), later, QUOTA).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(VaultStoreError::LabelTaken { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(store.get(&old.id, T).await.unwrap(), None, "the expired entry was replaced");
    assert_eq!(store.list(&alice, &VaultListQuery::first(10), later).await.unwrap().entries.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_database_is_healthy() {
    let db = TestDb::new().await;
    let health = PostgresHealth::new(db.db.clone()).health().await;
    assert_eq!(health.status, HealthStatus::Up, "{health:?}");
    assert!(health.detail.unwrap().starts_with("postgres: answered in "));
}

/// A URL with a password for a port nothing listens on.
fn unreachable_url() -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    format!("postgres://qudag:s3cret@127.0.0.1:{port}/qudag")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_an_unreachable_database_fails_promptly_without_the_password() {
    let started = Instant::now();
    let options = PgOptions::default().connect_timeout(Duration::from_millis(500));
    let err = connect(&unreachable_url(), options).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "bounded by the connect timeout: {:?}", started.elapsed());
    assert!(matches!(err, PgError::Connect { .. }), "{err:?}");
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("postgres://qudag:***@127.0.0.1:"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_port_method_on_an_unreachable_database_is_unavailable_promptly() {
    let options = PgOptions::default().connect_timeout(Duration::from_millis(300)).lazy(true);
    let db = connect(&unreachable_url(), options).await.unwrap();
    let (store, registry) = (PostgresVaultStore::new(db.clone()), PostgresNameRegistry::new(db.clone()));
    let alice = owner();
    let entry = sample_entry(&alice, "x", T);
    let name = fresh_name();
    let bounded = |started: Instant, what: &str| {
        assert!(started.elapsed() < Duration::from_secs(2), "{what} took {:?}", started.elapsed());
    };
    macro_rules! unavailable {
        ($call:expr, $error:path) => {{
            let started = Instant::now();
            let result = $call.await;
            bounded(started, stringify!($call));
            match result {
                Err($error { source }) => assert!(!source.to_string().contains("s3cret")),
                other => panic!("{}: expected Unavailable, got {other:?}", stringify!($call)),
            }
        }};
    }
    unavailable!(store.put(&entry, T, QUOTA), VaultStoreError::Unavailable);
    unavailable!(store.get(&entry.id, T), VaultStoreError::Unavailable);
    unavailable!(store.find_by_label(&alice, "x", T), VaultStoreError::Unavailable);
    unavailable!(store.list(&alice, &VaultListQuery::first(10), T), VaultStoreError::Unavailable);
    unavailable!(store.delete(&alice, &entry.id), VaultStoreError::Unavailable);
    unavailable!(store.counts(T), VaultStoreError::Unavailable);
    unavailable!(registry.register(&sample_record(&name, "iss#alice", T), T, QUOTA), NameRegistryError::Unavailable);
    unavailable!(registry.resolve(&name, T), NameRegistryError::Unavailable);
    unavailable!(registry.remove(&name, "iss#alice"), NameRegistryError::Unavailable);
    unavailable!(registry.count(T), NameRegistryError::Unavailable);
    let started = Instant::now();
    let health = PostgresHealth::new(db).with_timeout(Duration::from_millis(500)).health().await;
    bounded(started, "health");
    assert_eq!(health.status, HealthStatus::Down, "{health:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_probe_is_bounded_by_its_own_timeout() {
    // Waiting for a connection could take 10 s; the probe gives up after 200 ms.
    let options = PgOptions::default().connect_timeout(Duration::from_secs(10)).lazy(true);
    let db = connect(&unreachable_url(), options).await.unwrap();
    let probe = PostgresHealth::new(db).with_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let health = probe.health().await;
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(health.status, HealthStatus::Down);
    assert!(matches!(probe.ping().await, Err(PgError::Timeout(_))));
    assert!(health.detail.unwrap().contains("did not answer within"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_statement_timeout_applies_to_every_connection() {
    let db = TestDb::unmigrated().await;
    let options = PgOptions::default().schema(&db.schema).statement_timeout(Duration::from_millis(150));
    let conn = connect(&db.url, options).await.unwrap();
    let backend = conn.get_database_backend();
    let row = conn.query_one_raw(Statement::from_string(backend, "SHOW statement_timeout")).await.unwrap().unwrap();
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "150ms");
    let row = conn.query_one_raw(Statement::from_string(backend, "SELECT current_schema()")).await.unwrap().unwrap();
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), db.schema);
    let err = conn.execute_unprepared("SELECT pg_sleep(2)").await.unwrap_err();
    assert!(err.to_string().contains("statement timeout"), "{err}");
}

#[tokio::test]
async fn bad_urls_and_schema_names_are_refused_with_the_password_redacted() {
    let err = connect("postgres://u:s3cret@127.0.0.1:notaport/db", PgOptions::default()).await.unwrap_err();
    assert!(matches!(err, PgError::Url { .. }), "{err:?}");
    let shown = format!("{err} / {err:?}");
    assert!(!shown.contains("s3cret") && shown.contains("u:***@"), "{shown}");

    let err = connect("postgres://127.0.0.1/db", PgOptions::default().schema("x; DROP TABLE y")).await.unwrap_err();
    assert!(matches!(err, PgError::Schema { .. }), "{err:?}");
}
