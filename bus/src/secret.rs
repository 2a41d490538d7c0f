//! Secrets in configuration: kept in [`SecretString`], never logged, masked when printed.

use secrecy::SecretString;
use serde::Serializer;

/// What a set secret prints as.
pub const MASK: &str = "********";

/// Serializes an optional secret as [`MASK`] (or nothing), for `check-config`.
pub fn serialize_masked<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_some(MASK),
        None => serializer.serialize_none(),
    }
}
