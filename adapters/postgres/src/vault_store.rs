//! `PostgresVaultStore`: sealed vault entries in `vault_entries`.

use async_trait::async_trait;
use qudag_application::ports::{
    VaultCounts, VaultEntry, VaultEntrySummary, VaultListQuery, VaultPage, VaultStore, VaultStoreError,
};
use qudag_domain::Timestamp;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, SelectModel, Selector, Statement, TransactionTrait,
};

use crate::entity::micros;
use crate::entity::vault_entry::{self, ActiveModel, Column, Entity, Summary};
use crate::error::{PgError, violated_unique_constraint};

/// The primary key of `vault_entries` (a duplicate id).
const ID_CONSTRAINT: &str = "vault_entries_pkey";
/// The unique index on `vault_entries (owner, label)`.
const LABEL_CONSTRAINT: &str = "vault_entries_owner_label_key";
/// The first key of the transaction-scoped advisory lock that serializes one owner's puts
/// (the second is a hash of the owner), so the per-owner quota holds across nodes.
pub(crate) const VAULT_OWNER_LOCK: i32 = 0x7661_756c; // "vaul"

/// Take the advisory lock `(space, hashtext(owner))` until the transaction ends.
pub(crate) async fn lock_owner(txn: &impl ConnectionTrait, space: i32, owner: &str) -> Result<(), sea_orm::DbErr> {
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        [space.into(), owner.into()],
    ))
    .await
    .map(|_| ())
}

/// Vault entries in PostgreSQL (table `vault_entries`, see `qudag-postgres-migration`).
///
/// Every read filters out entries expired at the given `now`; an expired entry is deleted
/// when its label is reused. Label uniqueness per owner holds across any number of nodes
/// (a unique index); so does the per-owner quota (a put counts the owner's live entries
/// under an advisory lock of that owner). There is no overall capacity limit:
/// `CapacityExceeded` is never returned.
#[derive(Clone, Debug)]
pub struct PostgresVaultStore {
    db: DatabaseConnection,
}

impl PostgresVaultStore {
    /// A store on `db` (migrated with [`crate::migrate`]).
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

/// Entries live at `now`: no expiry, or an expiry after `now`.
fn live(now: Timestamp) -> Condition {
    Condition::any().add(Column::ExpiresAt.is_null()).add(Column::ExpiresAt.gt(micros(now)))
}

/// One page of the owner's live entries after `query.after`, plus one row to tell whether
/// another page follows. Reads summaries only: never the envelope.
fn list_select(owner: &str, query: &VaultListQuery, now: Timestamp, limit: usize) -> Selector<SelectModel<Summary>> {
    let mut select = Entity::find().filter(Column::Owner.eq(owner)).filter(live(now));
    if let Some(category) = &query.category {
        select = select.filter(Column::Category.eq(category));
    }
    if let Some(after) = &query.after {
        select = select.filter(Column::Id.gt(after));
    }
    select.order_by_asc(Column::Id).limit(limit as u64 + 1).into_partial_model()
}

#[async_trait]
impl VaultStore for PostgresVaultStore {
    async fn put(&self, entry: &VaultEntry, now: Timestamp, max_per_owner: usize) -> Result<(), VaultStoreError> {
        let txn = self.db.begin().await.map_err(PgError::query("vault_entries transaction begin"))?;
        lock_owner(&txn, VAULT_OWNER_LOCK, &entry.owner).await.map_err(PgError::query("vault_entries owner lock"))?;
        // An expired entry holding the label gives it up. Concurrent puts of one label all
        // reach the INSERT; the unique index lets exactly one commit.
        Entity::delete_many()
            .filter(Column::Owner.eq(&entry.owner))
            .filter(Column::Label.eq(&entry.label))
            .filter(Column::ExpiresAt.lte(micros(now)))
            .exec(&txn)
            .await
            .map_err(PgError::query("vault_entries delete of an expired label"))?;
        let held = Entity::find()
            .filter(Column::Owner.eq(&entry.owner))
            .filter(live(now))
            .count(&txn)
            .await
            .map_err(PgError::query("vault_entries count of an owner"))?;
        if held >= max_per_owner as u64 {
            return Err(VaultStoreError::OwnerQuotaExceeded { limit: max_per_owner });
        }
        if let Err(e) = Entity::insert(ActiveModel::from_entry(entry)).exec_without_returning(&txn).await {
            return Err(match violated_unique_constraint(&e) {
                Some(ID_CONSTRAINT) => VaultStoreError::IdTaken,
                Some(LABEL_CONSTRAINT) => VaultStoreError::LabelTaken { label: entry.label.clone() },
                _ => PgError::Query { operation: "vault_entries insert", source: e }.into(),
            });
        }
        txn.commit().await.map_err(PgError::query("vault_entries transaction commit"))?;
        Ok(())
    }

    async fn get(&self, id: &str, now: Timestamp) -> Result<Option<VaultEntry>, VaultStoreError> {
        let row = Entity::find_by_id(id)
            .filter(live(now))
            .one(&self.db)
            .await
            .map_err(PgError::query("vault_entries select by id"))?;
        Ok(row.map(VaultEntry::try_from).transpose()?)
    }

    async fn find_by_label(
        &self,
        owner: &str,
        label: &str,
        now: Timestamp,
    ) -> Result<Option<VaultEntry>, VaultStoreError> {
        let row = Entity::find()
            .filter(Column::Owner.eq(owner))
            .filter(Column::Label.eq(label))
            .filter(live(now))
            .one(&self.db)
            .await
            .map_err(PgError::query("vault_entries select by label"))?;
        Ok(row.map(VaultEntry::try_from).transpose()?)
    }

    async fn list(&self, owner: &str, query: &VaultListQuery, now: Timestamp) -> Result<VaultPage, VaultStoreError> {
        let limit = query.limit.clamp(1, 1000);
        let rows =
            list_select(owner, query, now, limit).all(&self.db).await.map_err(PgError::query("vault_entries list"))?;
        let mut entries = rows.into_iter().map(VaultEntrySummary::try_from).collect::<Result<Vec<_>, _>>()?;
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|e| e.id.clone())
        } else {
            None
        };
        Ok(VaultPage { entries, next })
    }

    async fn delete(&self, owner: &str, id: &str) -> Result<bool, VaultStoreError> {
        let result = Entity::delete_many()
            .filter(Column::Id.eq(id))
            .filter(Column::Owner.eq(owner))
            .exec(&self.db)
            .await
            .map_err(PgError::query("vault_entries delete"))?;
        Ok(result.rows_affected > 0)
    }

    async fn counts(&self, now: Timestamp) -> Result<VaultCounts, VaultStoreError> {
        let (entries, owners): (i64, i64) = Entity::find()
            .select_only()
            .column_as(Expr::col(vault_entry::Column::Id).count(), "entries")
            .column_as(Expr::col(vault_entry::Column::Owner).count_distinct(), "owners")
            .filter(live(now))
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(PgError::query("vault_entries counts"))?
            .unwrap_or_default();
        Ok(VaultCounts { entries: u64::try_from(entries).unwrap_or(0), owners: u64::try_from(owners).unwrap_or(0) })
    }
}

#[cfg(test)]
mod tests {
    use qudag_application::ports::VaultListQuery;
    use qudag_domain::Timestamp;
    use sea_orm::DbBackend;

    use super::list_select;

    #[test]
    fn listing_reads_no_envelope_and_pages_by_id() {
        let query = VaultListQuery { category: Some("c".into()), after: Some("vlt_1".into()), limit: 3 };
        let sql = list_select("iss#alice", &query, Timestamp::from_micros(7), 3)
            .into_statement(DbBackend::Postgres)
            .to_string();
        assert!(!sql.contains("envelope") && !sql.contains("key_id"), "{sql}");
        assert!(sql.contains(r#""vault_entries"."id" > 'vlt_1'"#), "{sql}");
        assert!(sql.contains(r#"("vault_entries"."expires_at" IS NULL OR "vault_entries"."expires_at" > 7)"#), "{sql}");
        assert!(sql.ends_with(r#"ORDER BY "vault_entries"."id" ASC LIMIT 4"#), "{sql}");
    }
}
