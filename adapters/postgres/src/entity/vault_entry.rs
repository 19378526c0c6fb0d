//! `vault_entries`: one sealed vault entry per row.

use qudag_application::ports::{VaultEntry, VaultEntrySummary};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;

use super::{micros, timestamp};
use crate::error::PgError;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "vault_entries")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub owner: String,
    pub label: String,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub algorithm: String,
    pub key_id: String,
    pub envelope: Vec<u8>,
    pub size: i64,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// What a listing reads: every column but the owner, the key id and the envelope.
#[derive(Debug, DerivePartialModel)]
#[sea_orm(entity = "Entity")]
pub(crate) struct Summary {
    pub id: String,
    pub label: String,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub algorithm: String,
    pub size: i64,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

fn size(size: i64) -> Result<u64, PgError> {
    u64::try_from(size).map_err(|_| PgError::Corrupt { what: format!("vault_entries.size is negative ({size})") })
}

impl ActiveModel {
    /// The row for `entry`.
    pub(crate) fn from_entry(entry: &VaultEntry) -> Self {
        Self {
            id: Set(entry.id.clone()),
            owner: Set(entry.owner.clone()),
            label: Set(entry.label.clone()),
            category: Set(entry.category.clone()),
            tags: Set(entry.tags.clone()),
            algorithm: Set(entry.algorithm.clone()),
            key_id: Set(entry.key_id.clone()),
            envelope: Set(entry.envelope.clone()),
            size: Set(i64::try_from(entry.size).unwrap_or(i64::MAX)),
            created_at: Set(micros(entry.created_at)),
            expires_at: Set(entry.expires_at.map(micros)),
        }
    }
}

impl TryFrom<Model> for VaultEntry {
    type Error = PgError;

    fn try_from(row: Model) -> Result<Self, PgError> {
        Ok(Self {
            size: size(row.size)?,
            created_at: timestamp(row.created_at, "vault_entries.created_at")?,
            expires_at: row.expires_at.map(|t| timestamp(t, "vault_entries.expires_at")).transpose()?,
            id: row.id,
            owner: row.owner,
            label: row.label,
            category: row.category,
            tags: row.tags,
            algorithm: row.algorithm,
            key_id: row.key_id,
            envelope: row.envelope,
        })
    }
}

impl TryFrom<Summary> for VaultEntrySummary {
    type Error = PgError;

    fn try_from(row: Summary) -> Result<Self, PgError> {
        Ok(Self {
            size: size(row.size)?,
            created_at: timestamp(row.created_at, "vault_entries.created_at")?,
            expires_at: row.expires_at.map(|t| timestamp(t, "vault_entries.expires_at")).transpose()?,
            id: row.id,
            label: row.label,
            category: row.category,
            tags: row.tags,
            algorithm: row.algorithm,
        })
    }
}
