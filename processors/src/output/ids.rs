//! Deterministic OpenLineage run ids.
//!
//! A run id has the UUIDv7 layout (RFC 9562): the first 48 bits are a millisecond Unix
//! timestamp, then version 7, the rest comes from a SHA-256 of the identity of what ran
//! (tenant, Dagster run id, kind, name...). Same input, same id: reprocessing the log gives the
//! same ids, and every event of one OpenLineage run (START and its COMPLETE) carries the same
//! id as long as the caller passes the same anchor time, which is why the time part is the
//! Dagster run's anchor ([`super::RunContext::started_ms`]), not each event's own time.

use sha2::{Digest, Sha256};
use uuid::{Builder, Uuid};

/// Domain separator: bump the version when the derivation changes.
const DOMAIN: &[u8] = b"lineage-bus/openlineage-run-id/v1";

/// The deterministic run id of `parts` (the identity, in order) anchored at `anchor_ms`.
/// Parts are length-prefixed, so `["ab", "c"]` and `["a", "bc"]` differ.
pub fn run_id(anchor_ms: i64, parts: &[&str]) -> Uuid {
    let mut hasher = Sha256::new();
    hasher.update(DOMAIN);
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    let millis = u64::try_from(anchor_ms).unwrap_or(0);
    Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_identity_same_id_and_uuid_v7_layout() {
        let a = run_id(1_795_241_820_175, &["prod", "run-1", "step", "x"]);
        let b = run_id(1_795_241_820_175, &["prod", "run-1", "step", "x"]);
        assert_eq!(a, b);
        assert_eq!(a.get_version_num(), 7);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        let (secs, nanos) = a.get_timestamp().expect("v7 has a timestamp").to_unix();
        assert_eq!(
            secs * 1000 + u64::from(nanos) / 1_000_000,
            1_795_241_820_175
        );
    }

    #[test]
    fn different_identity_different_id() {
        let base = run_id(1, &["prod", "run-1", "step", "x"]);
        assert_ne!(base, run_id(1, &["prod", "run-2", "step", "x"]));
        assert_ne!(base, run_id(1, &["prod", "run-1", "step", "y"]));
        assert_ne!(base, run_id(1, &["other", "run-1", "step", "x"]));
        assert_ne!(run_id(1, &["ab", "c"]), run_id(1, &["a", "bc"]));
    }
}
