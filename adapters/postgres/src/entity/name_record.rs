//! `name_records`: one signed `.dark` name record per row.

use qudag_application::ports::SignedNameRecord;
use qudag_domain::dark::{DarkName, NameRecordBody};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;

use super::{micros, timestamp};
use crate::error::PgError;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "name_records")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    pub address: String,
    pub public_key: Vec<u8>,
    pub key_algorithm: String,
    pub owner: String,
    pub registered_at: i64,
    pub expires_at: i64,
    pub signature_algorithm: String,
    pub signer_key_id: String,
    pub signature: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl ActiveModel {
    /// The row for `record`.
    pub(crate) fn from_record(record: &SignedNameRecord) -> Self {
        let body = &record.body;
        Self {
            name: Set(body.name.as_str().to_owned()),
            address: Set(body.address.clone()),
            public_key: Set(body.public_key.clone()),
            key_algorithm: Set(body.key_algorithm.clone()),
            owner: Set(body.owner.clone()),
            registered_at: Set(micros(body.registered_at)),
            expires_at: Set(micros(body.expires_at)),
            signature_algorithm: Set(record.signature_algorithm.clone()),
            signer_key_id: Set(record.signer_key_id.clone()),
            signature: Set(record.signature.clone()),
        }
    }
}

impl TryFrom<Model> for SignedNameRecord {
    type Error = PgError;

    fn try_from(row: Model) -> Result<Self, PgError> {
        let name = DarkName::parse(&row.name).map_err(|e| PgError::Corrupt {
            what: format!("name_records.name {:?} is not a valid name: {e}", row.name),
        })?;
        Ok(Self {
            body: NameRecordBody {
                name,
                address: row.address,
                public_key: row.public_key,
                key_algorithm: row.key_algorithm,
                owner: row.owner,
                registered_at: timestamp(row.registered_at, "name_records.registered_at")?,
                expires_at: timestamp(row.expires_at, "name_records.expires_at")?,
            },
            signature_algorithm: row.signature_algorithm,
            signer_key_id: row.signer_key_id,
            signature: row.signature,
        })
    }
}
