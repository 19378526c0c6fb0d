//! `PostgresNameRegistry`: signed `.dark` name records in `name_records`.

use async_trait::async_trait;
use qudag_application::ports::{NameRegistry, NameRegistryError, SignedNameRecord};
use qudag_domain::Timestamp;
use qudag_domain::dark::DarkName;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, Insert, PaginatorTrait, QueryFilter, TransactionTrait};

use crate::entity::micros;
use crate::entity::name_record::{ActiveModel, Column, Entity};
use crate::error::PgError;
use crate::vault_store::lock_owner;

/// The first key of the transaction-scoped advisory lock that serializes one owner's
/// registrations (the second is a hash of the owner), so the per-owner quota holds across
/// nodes.
const NAMES_OWNER_LOCK: i32 = 0x6e61_6d65; // "name"

/// Name records in PostgreSQL (table `name_records`, see `qudag-postgres-migration`).
///
/// Registration is one race-free statement (`INSERT … ON CONFLICT (name) DO UPDATE … WHERE`
/// the stored record is the same owner's or expired), so concurrent registrations on any
/// number of nodes have one winner. A name new to its owner is counted against the
/// owner's quota first, under an advisory lock of that owner, so the quota holds across
/// nodes too. Records are returned exactly as stored; their signatures are checked by the
/// use case. There is no overall capacity limit: `CapacityExceeded` is never returned.
#[derive(Clone, Debug)]
pub struct PostgresNameRegistry {
    db: DatabaseConnection,
}

impl PostgresNameRegistry {
    /// A registry on `db` (migrated with [`crate::migrate`]).
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

/// Insert `record`, or overwrite the stored one if it is the same owner's or expired at
/// `now`; affects no row when another owner's live record holds the name. One statement:
/// concurrent registrations of a name serialize on its row.
fn upsert(record: &SignedNameRecord, now: Timestamp) -> Insert<ActiveModel> {
    let replaceable = Expr::col((Entity, Column::Owner))
        .eq(Expr::col((Alias::new("excluded"), Column::Owner)))
        .or(Expr::col((Entity, Column::ExpiresAt)).lte(micros(now)));
    let on_conflict = OnConflict::column(Column::Name)
        .update_columns([
            Column::Address,
            Column::PublicKey,
            Column::KeyAlgorithm,
            Column::Owner,
            Column::RegisteredAt,
            Column::ExpiresAt,
            Column::SignatureAlgorithm,
            Column::SignerKeyId,
            Column::Signature,
        ])
        .action_and_where(replaceable)
        .to_owned();
    Entity::insert(ActiveModel::from_record(record)).on_conflict(on_conflict)
}

#[async_trait]
impl NameRegistry for PostgresNameRegistry {
    async fn register(
        &self,
        record: &SignedNameRecord,
        now: Timestamp,
        max_per_owner: usize,
    ) -> Result<(), NameRegistryError> {
        let owner = &record.body.owner;
        let txn = self.db.begin().await.map_err(PgError::query("name_records transaction begin"))?;
        lock_owner(&txn, NAMES_OWNER_LOCK, owner).await.map_err(PgError::query("name_records owner lock"))?;
        let live_of_owner = || Entity::find().filter(Column::Owner.eq(owner)).filter(Column::ExpiresAt.gt(micros(now)));
        let renewal = live_of_owner()
            .filter(Column::Name.eq(record.body.name.as_str()))
            .count(&txn)
            .await
            .map_err(PgError::query("name_records select of the owner's name"))?
            > 0;
        if !renewal {
            let held = live_of_owner().count(&txn).await.map_err(PgError::query("name_records count of an owner"))?;
            if held >= max_per_owner as u64 {
                // A live name of another owner is `Taken` whatever this owner's quota.
                let taken = Entity::find_by_id(record.body.name.as_str())
                    .filter(Column::ExpiresAt.gt(micros(now)))
                    .count(&txn)
                    .await
                    .map_err(PgError::query("name_records select"))?
                    > 0;
                return Err(if taken {
                    NameRegistryError::Taken { name: record.body.name.clone() }
                } else {
                    NameRegistryError::OwnerQuotaExceeded { limit: max_per_owner }
                });
            }
        }
        let written =
            upsert(record, now).exec_without_returning(&txn).await.map_err(PgError::query("name_records upsert"))?;
        if written == 0 {
            return Err(NameRegistryError::Taken { name: record.body.name.clone() });
        }
        txn.commit().await.map_err(PgError::query("name_records transaction commit"))?;
        Ok(())
    }

    async fn resolve(&self, name: &DarkName, now: Timestamp) -> Result<Option<SignedNameRecord>, NameRegistryError> {
        let row = Entity::find_by_id(name.as_str())
            .filter(Column::ExpiresAt.gt(micros(now)))
            .one(&self.db)
            .await
            .map_err(PgError::query("name_records select"))?;
        Ok(row.map(SignedNameRecord::try_from).transpose()?)
    }

    async fn remove(&self, name: &DarkName, owner: &str) -> Result<bool, NameRegistryError> {
        let result = Entity::delete_many()
            .filter(Column::Name.eq(name.as_str()))
            .filter(Column::Owner.eq(owner))
            .exec(&self.db)
            .await
            .map_err(PgError::query("name_records delete"))?;
        Ok(result.rows_affected > 0)
    }

    async fn count(&self, now: Timestamp) -> Result<u64, NameRegistryError> {
        Ok(Entity::find()
            .filter(Column::ExpiresAt.gt(micros(now)))
            .count(&self.db)
            .await
            .map_err(PgError::query("name_records count"))?)
    }
}

#[cfg(test)]
mod tests {
    use qudag_application::testkit::name_registry::{fresh_name, sample_record};
    use qudag_domain::Timestamp;
    use sea_orm::{DbBackend, QueryTrait};

    use super::upsert;

    #[test]
    fn registration_overwrites_only_the_same_owner_or_an_expired_record() {
        let record = sample_record(&fresh_name(), "iss#alice", Timestamp::from_micros(5));
        let sql = upsert(&record, Timestamp::from_micros(9)).build(DbBackend::Postgres).to_string();
        assert!(sql.contains(r#"ON CONFLICT ("name") DO UPDATE SET"#), "{sql}");
        assert!(
            sql.ends_with(r#"WHERE "name_records"."owner" = "excluded"."owner" OR "name_records"."expires_at" <= 9"#),
            "{sql}"
        );
    }
}
