//! `cargo xtask bench runtime`, its last table: a task through
//! containerd's runc shim (`ctr run --rm … true`: the shim's start, the
//! runtime's create and start, the exit and the runtime's delete) with
//! Debian's crun and with husk-runc, interleaved in one QEMU boot of
//! the engines guest (`husk-check containerd-bench`). Under TCG the
//! absolute figures are the emulator's; the ratio is the comparison.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use qemu_tests::{InitConfig, Restart, Service, TestDir, engines};

/// A boot, containerd's start, and about a second per task under TCG.
const PER_RUN: Duration = Duration::from_secs(10);
const BOOT: Duration = Duration::from_secs(300);

struct Row {
    name: String,
    median: f64,
    p95: f64,
    min: f64,
}

pub fn run(runs: usize) -> Result<()> {
    let scenario = engines::BENCH_SCENARIO;
    let dir = TestDir::new("bench_containerd")?;
    let archive =
        husk_testkit::oci_archive(engines::ENGINE_IMAGE, &[husk_testkit::busybox_layer()]);
    let count = runs.to_string();
    let config = InitConfig::default().service(Service::checker(
        "bench",
        &[scenario, &count],
        Restart::Never,
    ));
    eprintln!("bench: containerd: booting the engines guest ({runs} tasks per runtime)");
    let mut vm = engines::boot(dir, &config, &archive)?;
    vm.expect_check(scenario, BOOT + PER_RUN * (2 * runs as u32))
        .context("the containerd bench in the guest")?;
    let serial = std::fs::read_to_string(vm.serial_path()).context("reading the serial log")?;
    let rows = parse(&serial, scenario);
    if rows.len() != 2 {
        bail!(
            "expected results for crun and husk-runc, found {}",
            rows.len()
        );
    }
    print(&rows, runs);
    Ok(())
}

/// The `result NAME median_ms=… p95_ms=… min_ms=…` lines.
fn parse(serial: &str, scenario: &str) -> Vec<Row> {
    let prefix = format!("husk-check: {scenario}: result ");
    serial
        .lines()
        .filter_map(|line| {
            let rest = &line[line.find(&prefix)? + prefix.len()..];
            let mut words = rest.split_whitespace();
            let name = words.next()?.to_owned();
            let mut value =
                |key: &str| -> Option<f64> { words.next()?.strip_prefix(key)?.parse().ok() };
            Some(Row {
                name,
                median: value("median_ms=")?,
                p95: value("p95_ms=")?,
                min: value("min_ms=")?,
            })
        })
        .collect()
}

fn print(rows: &[Row], runs: usize) {
    let husk = rows
        .iter()
        .find(|r| r.name == "husk-runc")
        .map_or(f64::NAN, |r| r.median);
    println!();
    println!(
        "`ctr run --rm … true` through containerd 1.6's runc shim in a QEMU guest (TCG), {runs} runs each, interleaved:"
    );
    println!("| runtime | median ms | p95 ms | min ms | median / husk-runc |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.2}x |",
            r.name,
            r.median,
            r.p95,
            r.min,
            r.median / husk
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_read_from_the_serial_log() {
        let serial = "[ 1.0] husk-init: bench: husk-check: containerd-bench: result crun median_ms=612.5 p95_ms=700.1 min_ms=590.0 runs=20\n\
                      noise\n\
                      [ 2.0] husk-init: bench: husk-check: containerd-bench: result husk-runc median_ms=580.0 p95_ms=650.0 min_ms=560.2 runs=20\n";
        let rows = parse(serial, "containerd-bench");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].name, "husk-runc");
        assert_eq!(rows[0].median, 612.5);
        assert_eq!(rows[1].min, 560.2);
    }
}
