//! Remote quorum over any text channel: request codes, read-back words,
//! approval codes, and the requester's ephemeral keys.

pub mod code;
pub mod enrol;
pub mod pending;
pub mod pins;
pub mod request;
pub mod words;

pub use enrol::{EnrolError, Enrolment};
pub use pending::{state_dir, OpenRequest, PendingError, PendingRequest};
pub use request::{parse_ttl, ParsedRequest, Request, RequestError};
