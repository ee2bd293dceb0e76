//! Boot-time behaviour of husk-init, each test a real boot under QEMU:
//! readiness, clean power off and reboot, service supervision, config
//! errors and zombie reaping. The lines waited for are the log contract
//! of docs/ARCHITECTURE.md (see `qemu_tests::log_lines`).

mod common;

use common::*;
use qemu_tests::log_lines::{self, AGENT_READY, INIT_STARTING, REAPED_ORPHAN, REBOOT};
use qemu_tests::{GuestImage, InitConfig, Restart, Result, SerialCursor, Service, Vm, VmBuilder};

fn boot(test: &str, config: &str, customize: impl FnOnce(VmBuilder) -> VmBuilder) -> Result<Vm> {
    boot_direct(test, GuestImage::builder().init_config(config), customize)
}

#[test]
fn boots_to_agent_ready_and_powers_off() -> Result<()> {
    let config = InitConfig::with_agent()
        .check("check-health", "agent-health")
        .check("check-mounts", "mounts")
        .check("check-modules", "modules")
        .to_toml();
    // A virtio NIC gives coldplug something to load (virtio_pci).
    let mut vm = boot(
        "boots_to_agent_ready_and_powers_off",
        &config,
        VmBuilder::user_net,
    )?;
    vm.wait_for_line(INIT_STARTING, TO_INIT)?;
    vm.wait_for_line(AGENT_READY, TO_AGENT_READY)?;
    vm.expect_check("agent-health", TO_CHECK)?;
    vm.expect_check("mounts", TO_CHECK)?;
    vm.expect_check("modules", TO_CHECK)?;
    power_off(&mut vm)?;
    Ok(())
}

#[test]
fn agent_killed_is_restarted() -> Result<()> {
    let config = InitConfig::with_agent()
        .check("killer", "kill-agent")
        .to_toml();
    let mut vm = boot("agent_killed_is_restarted", &config, |b| b)?;
    let first_ready = vm.wait_for_line_after(
        SerialCursor::START,
        &log_lines::service_ready("husk-agent"),
        TO_AGENT_READY,
    )?;
    vm.expect_check("kill-agent", TO_CHECK)?;
    // The killer's verdict and init's notice of the death may come in
    // either order, so look from the first readiness on.
    let killed = vm.wait_for_line_after(
        first_ready.after,
        &log_lines::service_killed("husk-agent"),
        TO_CHECK,
    )?;
    vm.wait_for_line_after(
        killed.after,
        &log_lines::service_ready("husk-agent"),
        TO_AGENT_READY,
    )?;
    Ok(())
}

#[test]
fn crash_loop_gives_up_without_taking_the_machine_down() -> Result<()> {
    let config = InitConfig::with_agent()
        .service(Service::checker("crasher", &["crash"], Restart::Always))
        .check("check-health", "agent-health")
        .to_toml();
    let mut vm = boot("crash_loop_gives_up", &config, |b| b)?;
    // Five quick failures with backoff (0.2 + 0.4 + 0.8 + 1.6 s) plus boot.
    vm.wait_for_line_from_start(&log_lines::crash_loop("crasher"), TO_AGENT_READY)?;
    vm.wait_for_line_from_start(AGENT_READY, TO_AGENT_READY)?;
    vm.expect_check("agent-health", TO_CHECK)?;
    let starts = vm.count_lines(&log_lines::service_started("crasher"))?;
    power_off(&mut vm)?;
    assert_eq!(
        vm.count_lines(&log_lines::service_started("crasher"))?,
        starts,
        "init restarted the crasher after giving up"
    );
    Ok(())
}

#[test]
fn invalid_config_still_boots() -> Result<()> {
    // A typo'd field in a service table, on line 7: init must point at
    // it and fall back to the built-in defaults (which run the agent).
    let config = "\
# Line numbers matter: the typo below is on line 7.
hostname = \"husk\"

[[service]]
name = \"husk-agent\"
command = [\"/usr/bin/husk-agent\"]
restrat = \"always\"
notify = true
";
    let mut vm = boot("invalid_config_still_boots", config, |b| b)?;
    let error = vm.wait_for_line_from_start(log_lines::CONFIG_ERROR, TO_AGENT_READY)?;
    assert!(
        error.contains(&log_lines::config_error_at(7)),
        "config error not reported at line 7: {error}"
    );
    assert!(
        error.contains("restrat"),
        "the error does not name the field: {error}"
    );
    vm.wait_for_line_from_start(AGENT_READY, TO_AGENT_READY)?;
    Ok(())
}

#[test]
fn orphans_are_reaped() -> Result<()> {
    // No agent: nothing else runs, so every zombie is the checker's doing.
    let config = InitConfig::default().check("orphans", "orphans").to_toml();
    let mut vm = boot("orphans_are_reaped", &config, |b| b)?;
    vm.expect_check("orphans", TO_AGENT_READY)?;
    vm.wait_for_line_from_start(REAPED_ORPHAN, TO_CHECK)?;
    Ok(())
}

#[test]
fn ctrl_alt_del_reboots() -> Result<()> {
    let mut vm = boot(
        "ctrl_alt_del_reboots",
        &InitConfig::with_agent().to_toml(),
        |b| b,
    )?;
    vm.wait_for_line(AGENT_READY, TO_AGENT_READY)?;
    vm.qmp().send_key(&["ctrl", "alt", "delete"])?;
    vm.wait_for_line(REBOOT, TO_SHUTDOWN_LINE)?;
    // The cursor is past the first boot: this is the second start.
    vm.wait_for_line(INIT_STARTING, TO_EXIT + TO_INIT)?;
    vm.qmp().wait_for_event("RESET", TO_CHECK)?;
    Ok(())
}
