//! lineage-bus: the one binary. Each subcommand runs one role of the pipeline (or all of them
//! with `up`); `check-config` prints the effective configuration.

mod cli;
mod config;
mod roles;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

// mimalloc instead of glibc's malloc: the processor allocates many small strings per record
// and spends a third of its time in glibc's allocator (processors/benches/processor.rs:
// ~82k → ~112k records/s per core).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(roles::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
