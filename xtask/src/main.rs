//! `cargo xtask run | test | bench | dist | fuzz`: the project's tasks, in
//! Rust so they run the same on every machine.

mod bench;
mod bench_agent;
mod bench_api;
mod bench_containerd;
mod bench_memory;
mod bench_network;
mod bench_pull;
mod bench_runtime;
mod beside;
mod boot;
mod cgroup_ns;
mod dist;
mod fuzz;
mod prereqs;
mod pyenv;
mod steps;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Husk's tasks: run, test, bench, dist, fuzz")]
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
        /// The guest's metadata service (169.254.169.254:80) is this
        /// EC2-style server, http://HOST[:PORT]; without it the guest
        /// reaches none, not even the host's.
        #[arg(long, value_name = "URL", conflicts_with = "check")]
        metadata: Option<String>,
    },
    /// Every test: fmt, clippy, unit tests and the QEMU boots.
    Test {
        /// Also write cargo's per-crate build reports
        /// (target/cargo-timings/).
        #[arg(long)]
        timings: bool,
    },
    /// The release bundle: husk-image, huskctl, husk-init, husk-agent,
    /// statically linked, in one directory.
    Dist {
        /// Where to write it [default: target/dist].
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
    /// Benchmarks: boot milestones, container start latency against
    /// crun and runc, memory per container, pulls against skopeo, the
    /// bridge against `--network none` and loopback, the Docker API
    /// against dockerd. All of them by default.
    Bench {
        /// Only this one.
        #[arg(value_enum)]
        what: Option<BenchWhat>,
        /// Boot benchmark: how many boots.
        #[arg(long, default_value_t = 5)]
        boots: usize,
        /// Boot benchmark: kernel and initramfs directly instead of UEFI.
        #[arg(long)]
        direct: bool,
        /// Runtime benchmark: runs per runtime (the API benchmark: per
        /// path, at most 50).
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Runtime benchmark: tasks per runtime through containerd's
        /// shim in the QEMU guest.
        #[arg(long, default_value_t = 20)]
        shim_runs: usize,
        /// Memory benchmark: idle containers to run (the API benchmark:
        /// containers running while `huskctl ps` is timed).
        #[arg(long, default_value_t = 100)]
        containers: usize,
        /// Pull benchmark: pulls of each kind (median).
        #[arg(long, default_value_t = 3)]
        pulls: usize,
        /// Network benchmark: idle containers running while the published
        /// port's latency and the starts are measured again.
        #[arg(long, default_value_t = 100)]
        idle: usize,
    },
    /// Coverage-guided fuzzing of the parsers of hostile input (fuzz/):
    /// each target for --time seconds from its seeds; fails on a crash,
    /// printing the input and how to replay it.
    Fuzz {
        /// Only this target: a name in fuzz/fuzz_targets/ (tar_unpack,
        /// gpt_read, …); an unknown one lists them.
        #[arg(conflicts_with = "all")]
        target: Option<String>,
        /// Every target (the default without TARGET).
        #[arg(long)]
        all: bool,
        /// Seconds per target.
        #[arg(long, value_name = "SECS", default_value_t = fuzz::TEST_SECS)]
        time: u64,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum BenchWhat {
    Boot,
    Runtime,
    Memory,
    Pull,
    Network,
    Api,
}

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Run {
            check: false,
            direct,
            metadata,
        } => boot::interactive(direct, metadata.as_deref()),
        Task::Run {
            check: true,
            direct,
            ..
        } => boot::check(direct),
        Task::Test { timings } => test::run(timings),
        Task::Dist { out } => dist::run(out),
        Task::Fuzz { target, time, .. } => fuzz::run(target, time.max(1)),
        Task::Bench {
            what,
            boots,
            direct,
            runs,
            shim_runs,
            containers,
            pulls,
            idle,
        } => {
            let all = what.is_none();
            let mut result = Ok(());
            if all || what == Some(BenchWhat::Runtime) {
                result = result.and_then(|()| bench_runtime::run(runs.max(1), shim_runs.max(1)));
            }
            if all || what == Some(BenchWhat::Memory) {
                result = result.and_then(|()| bench_memory::run(containers.max(1)));
            }
            if all || what == Some(BenchWhat::Pull) {
                result = result.and_then(|()| bench_pull::run(pulls.max(1)));
            }
            if all || what == Some(BenchWhat::Network) {
                result = result.and_then(|()| bench_network::run(idle));
            }
            if all || what == Some(BenchWhat::Api) {
                result = result.and_then(|()| bench_api::run(runs.clamp(1, 50), containers.max(1)));
            }
            if all || what == Some(BenchWhat::Boot) {
                result = result.and_then(|()| bench::run(boots.max(1), direct));
            }
            result
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
