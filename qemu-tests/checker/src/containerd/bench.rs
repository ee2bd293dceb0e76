//! `containerd-bench [RUNS]`: what a task costs through containerd's
//! runc shim, `ctr run --rm … true` (the shim's start, the runtime's
//! create and start, the exit, the runtime's delete), with crun and with
//! husk-runc interleaved in one boot, after a warm-up. Prints one
//! `result NAME median_ms=… p95_ms=… min_ms=… runs=…` line per runtime
//! (`cargo xtask bench runtime` reads them), then PASS.

use std::time::Instant;

use super::ctr::ctr;
use super::{Containerd, import, run_args, runtimes};
use crate::{Outcome, say};

pub const SCENARIO: &str = "containerd-bench";
const DEFAULT_RUNS: usize = 20;
const WARM_UP: usize = 3;

pub fn run(args: &[String]) -> Outcome {
    let runs = match args.first() {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("runs {text:?}: expected a positive number"))?,
        None => DEFAULT_RUNS,
    };
    let mut containerd = Containerd::start()?;
    let result = import().and_then(|()| measure(runs));
    containerd.stop();
    result
}

fn measure(runs: usize) -> Outcome {
    let runtimes = runtimes();
    let mut samples = vec![Vec::with_capacity(runs); runtimes.len()];
    for i in 0..WARM_UP + runs {
        // Round-robin: a slow moment of the guest hits both alike.
        for (rt, times) in runtimes.iter().zip(&mut samples) {
            let id = format!("bench-{}-{i}", rt.name);
            let started = Instant::now();
            let ran = ctr(&run_args(&["--rm"], &rt.binary, &id, &["true"]))?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            if ran.code != Some(0) {
                return Err(format!("{}: ctr run {id}: {}", rt.name, ran.describe()));
            }
            if i >= WARM_UP {
                times.push(ms);
            }
        }
    }
    for (rt, times) in runtimes.iter().zip(&mut samples) {
        times.sort_by(f64::total_cmp);
        let rank =
            |q: f64| times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
        say(
            SCENARIO,
            &format!(
                "result {} median_ms={:.1} p95_ms={:.1} min_ms={:.1} runs={runs}",
                rt.name,
                rank(0.5),
                rank(0.95),
                times[0]
            ),
        );
    }
    Ok(())
}
