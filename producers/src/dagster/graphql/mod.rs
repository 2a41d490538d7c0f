//! Dagster's GraphQL API as a source: the client (token, timeouts, retries), the metadata
//! mapping shared by asset definitions and events, the event poller ([`poller`]) and the
//! transactional writer.

pub mod client;
pub mod config;
pub mod events;
pub mod metadata;
pub(crate) mod metrics;
pub mod poller;
pub mod readiness;
pub mod txn;

pub use config::GraphqlConfig;
