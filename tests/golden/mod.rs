//! The golden test's normalization and diff.

pub mod diff;
