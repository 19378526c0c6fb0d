//! The pure core of the QuDAG MCP server.
//!
//! Values and rules only: no I/O, no async runtime, no framework types. Everything that
//! needs the outside world (time, randomness, storage) is handed in by the caller, so each
//! rule is a plain function that unit and property tests can pin down exactly.
//!
//! - [`session`]: MCP sessions, their ids, owners and expiry.
//! - [`principal`]: who is calling, and the rules for accepting a token's claims.
//! - [`quota`]: rate-limit policies and the GCRA arithmetic.
//! - [`audit`]: audit records and their BLAKE3 hash chain.
//! - [`backoff`]: the schedule of delays every retry loop waits by.
//! - [`rbac`]: roles, permissions and the authorization decision.
//! - [`time`]: the timestamp type every rule is expressed in.
//! - [`dark`]: `.dark` names and the bytes a name record is signed over.
//! - [`quantum`]: quantum circuits, their simulation, optimization and analysis.
//! - [`pqc`]: post-quantum key encapsulation, signatures and the vault envelope.
//! - [`redact`]: what may be shown of a URL that can carry credentials.
//! - [`clip`]: caller-supplied text kept to a fixed size (a prefix and a digest).
#![deny(missing_docs)]

pub mod audit;
pub mod backoff;
pub mod clip;
pub mod dark;
pub mod pqc;
pub mod principal;
pub mod quantum;
pub mod quota;
pub mod rbac;
pub mod redact;
pub mod session;
pub mod time;

pub use time::Timestamp;
