//! Where the tests' PostgreSQL comes from, and a fresh schema per test.
//!
//! The server is `QUDAG_TEST_DATABASE_URL` when set (tests/run.sh sets
//! `postgres://postgres@127.0.0.1:5432/test`); otherwise each test starts its own PostgreSQL
//! container with testcontainers (needs a Docker engine). Every test works in a schema of
//! its own (`t_<random hex>`), migrated on creation and dropped when the test ends.

#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use qudag_adapter_postgres::{DatabaseConnection, PgOptions, connect, migrate};
use qudag_test_support::postgres::{URL_VAR, configured_url};
use sea_orm::ConnectionTrait;
use testcontainers::ContainerAsync;
use testcontainers::runners::AsyncRunner;
use testcontainers_modules::postgres::Postgres;

/// A server to test against: the one `QUDAG_TEST_DATABASE_URL` names, or a new container.
async fn server() -> (String, Option<ContainerAsync<Postgres>>) {
    if let Some(url) = configured_url() {
        return (url, None);
    }
    let container = match Postgres::default().start().await {
        Ok(container) => container,
        Err(e) => panic!(
            "{URL_VAR} is not set and no PostgreSQL container could be started ({e}); set {URL_VAR} to a \
             PostgreSQL the tests may create schemas in, e.g. {URL_VAR}=postgres://postgres@127.0.0.1:5432/test"
        ),
    };
    let host = container.get_host().await.unwrap();
    let port = container.get_host_port_ipv4(5432).await.unwrap();
    (format!("postgres://postgres:postgres@{host}:{port}/postgres"), Some(container))
}

/// A schema of its own for one test, dropped (with its container, if any) when this is.
#[derive(Debug)]
pub struct TestDb {
    /// The server's URL (without a schema).
    pub url: String,
    /// The schema's name.
    pub schema: String,
    /// A pool whose connections use the schema, migrated.
    pub db: DatabaseConnection,
    container: Option<ContainerAsync<Postgres>>,
}

impl TestDb {
    /// A fresh, migrated schema.
    pub async fn new() -> Self {
        let db = Self::unmigrated().await;
        migrate(&db.db).await.unwrap();
        db
    }

    /// A fresh schema without tables.
    pub async fn unmigrated() -> Self {
        let (url, container) = server().await;
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let schema = format!("t_{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let admin = connect(&url, PgOptions::default().max_connections(1)).await.unwrap();
        admin.execute_unprepared(&format!("CREATE SCHEMA {schema}")).await.unwrap();
        admin.close().await.unwrap();
        let db = connect(&url, PgOptions::default().max_connections(8).schema(&schema)).await.unwrap();
        Self { url, schema, db, container }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, schema, container) = (self.url.clone(), self.schema.clone(), self.container.take());
        let cleanup = async move {
            let options = PgOptions::default().max_connections(1).connect_timeout(Duration::from_secs(5));
            if let Ok(admin) = connect(&url, options).await {
                let _ = admin.execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await;
                let _ = admin.close().await;
            }
            if let Some(container) = container {
                let _ = container.rm().await;
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| handle.block_on(cleanup));
            }
            _ => {
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    runtime.block_on(cleanup);
                })
                .join();
            }
        }
    }
}
