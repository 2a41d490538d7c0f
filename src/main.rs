//! lineage-bus: the one binary.
fn main() {}
