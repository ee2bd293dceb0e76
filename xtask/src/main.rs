//! `cargo xtask run | test | bench`: the project's tasks, in Rust so they
//! run the same on every machine.

mod bench;
mod boot;
mod prereqs;
mod steps;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Husk's tasks: run, test, bench")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build everything and boot the default image in QEMU, the serial
    /// console on this terminal.
    Run {
        /// Boot headless instead: wait for the agent, power off through
        /// ACPI, print the boot timings, exit 0 only if all of it worked.
        #[arg(long)]
        check: bool,
        /// Boot kernel and initramfs directly (QEMU -kernel/-initrd),
        /// skipping firmware and boot loader: faster.
        #[arg(long)]
        direct: bool,
    },
    /// Every test: fmt, clippy, unit tests and the QEMU boots.
    Test,
    /// Boot-time benchmark over several boots.
    Bench {
        /// How many boots.
        #[arg(long, default_value_t = 5)]
        boots: usize,
        /// Boot kernel and initramfs directly instead of through UEFI.
        #[arg(long)]
        direct: bool,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Run {
            check: false,
            direct,
        } => boot::interactive(direct),
        Task::Run {
            check: true,
            direct,
        } => boot::check(direct),
        Task::Test => test::run(),
        Task::Bench { boots, direct } => bench::run(boots.max(1), direct),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
