//! SeaORM entities of the tables `qudag-postgres-migration` creates, and the conversions
//! between their columns and domain values.

pub(crate) mod name_record;
pub(crate) mod vault_entry;

use qudag_domain::Timestamp;

use crate::error::PgError;

/// A timestamp as stored: `bigint` microseconds since the epoch. Instants past `i64::MAX`
/// microseconds (year 294247; only ever a saturated "far future") are stored as `i64::MAX`.
pub(crate) fn micros(t: Timestamp) -> i64 {
    i64::try_from(t.as_micros()).unwrap_or(i64::MAX)
}

/// A stored timestamp back as a domain value (the tables' CHECK constraints keep it ≥ 0).
pub(crate) fn timestamp(micros: i64, column: &'static str) -> Result<Timestamp, PgError> {
    u64::try_from(micros)
        .map(Timestamp::from_micros)
        .map_err(|_| PgError::Corrupt { what: format!("{column} is negative ({micros})") })
}
