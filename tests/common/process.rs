//! Child processes of the root package's tests: the `lineage-bus` binary and a guard that
//! stops it. Without `base.rs`, so that tests including `sinks/tests/common` (which includes
//! `base.rs`) can include this file too.
#![allow(dead_code)] // each test binary uses a subset

use std::process::{Child, Command};

/// This package's `lineage-bus` binary pointed at the testbed's Kafka and Schema Registry, their
/// addresses read with `service_env` (which fails loudly when one is missing); the caller adds
/// the subcommand and the role's settings.
pub fn lineage_bus(service_env: fn(&str) -> String) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lineage-bus"));
    command
        .env(
            "LINEAGE_BUS__KAFKA__BOOTSTRAP_SERVERS",
            service_env("KAFKA_BOOTSTRAP"),
        )
        .env(
            "LINEAGE_BUS__SCHEMA_REGISTRY__URL",
            service_env("SCHEMA_REGISTRY_URL"),
        );
    command
}

/// A child process killed and reaped when dropped (a failing test leaves nothing running).
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
