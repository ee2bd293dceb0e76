//! `cargo xtask bench boot`: boot-time figures over several boots,
//! median and p95 of each milestone. (`bench_runtime` and `bench_memory`
//! are the container benchmarks.)

use std::time::Duration;

use anyhow::Result;

use crate::boot::{BootTimings, boot_cycle, build_default_image};

pub fn run(boots: usize, direct: bool) -> Result<()> {
    let image = build_default_image(direct)?;
    let mut runs: Vec<BootTimings> = Vec::with_capacity(boots);
    for i in 0..boots {
        let t = boot_cycle(&image)?;
        eprintln!(
            "bench: boot {}/{boots}: agent ready at {:.2} s (init's own: {} ms)",
            i + 1,
            t.agent_ready.as_secs_f64(),
            t.init_to_ready_ms
        );
        runs.push(t);
    }
    let how = if direct { "direct kernel boot" } else { "UEFI" };
    println!(
        "boot under QEMU ({how}; QEMU start = 0; {boots} boots; TCG unless HUSK_QEMU_ACCEL=kvm)"
    );
    println!("{:<28} {:>10} {:>10}", "milestone", "median", "p95");
    let row = |name: &str, pick: fn(&BootTimings) -> Duration| {
        let mut values: Vec<f64> = runs
            .iter()
            .map(|t| pick(t).as_secs_f64() * 1000.0)
            .collect();
        let (median, p95) = median_p95(&mut values);
        println!("{name:<28} {median:>8.0}ms {p95:>8.0}ms");
    };
    row("init started", |t| t.init_started);
    row("modules loaded", |t| t.modules_loaded);
    row("agent ready", |t| t.agent_ready);
    row("powered off", |t| t.powered_off);
    row("init start -> agent ready", |t| {
        Duration::from_millis(t.init_to_ready_ms)
    });
    Ok(())
}

/// Median and 95th percentile (nearest rank) of `values`.
pub fn median_p95(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let index = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
        values[index]
    };
    (rank(0.5), rank(0.95))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(median_p95(&mut v), (3.0, 5.0));
        let mut one = [7.0];
        assert_eq!(median_p95(&mut one), (7.0, 7.0));
    }
}
