//! `firewall WEB CLIENT IMDS BODY`: the containers' firewall on a booted
//! machine, with three containers the user-data started (restart=always):
//! WEB serving `hello from web-1` on 8080, CLIENT, and IMDS, the one
//! allowed the metadata service (which answers BODY). Each boot:
//!
//! - IMDS fetches the metadata service (the control: it is there and
//!   reachable), CLIENT does not, and the firewall's `metadata` drop
//!   counter grew while it tried (the firewall dropped it, not a route);
//! - CLIENT fetches WEB over IPv6, at WEB's unique local address;
//! - the agent's table is printed (`nft LABEL: …` lines, see
//!   [`crate::nft`]) for the test to compare across boots.
//!
//! The first boot also SIGKILLs the agent, waits for init's new one to
//! write its table (a new table handle), prints the table again
//! (`nft restart: …`) and leaves a marker on the data partition, so the
//! next boot prints `nft boot2: …`.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use super::{Outcome, agent, nft, reboot, say};

const SCENARIO: &str = "firewall";
const MARKER: &str = "/var/lib/husk/check-firewall";
const METADATA_URL: &str = "http://169.254.169.254/latest/meta-data/";
/// What the web image serves.
const WEB_BODY: &str = "hello from web-1";
/// A container's start after a reboot, or the agent's after a kill,
/// under TCG.
const DEADLINE: Duration = Duration::from_secs(90);
/// One fetch; a dropped SYN is retried by the kernel for longer than
/// this, so a blocked fetch ends here.
const FETCH_SECS: &str = "10";

pub fn run(args: &[String]) -> Outcome {
    let [web, client, imds, body] = args else {
        return Err("usage: firewall WEB CLIENT IMDS BODY".into());
    };
    agent::health(&[])?;
    let first_boot = !Path::new(MARKER).exists();
    for name in [web, client, imds] {
        wait_for(DEADLINE, &format!("{name} to run"), || {
            reboot::status(name).is_ok_and(|s| s == "running")
        })?;
    }
    metadata(client, imds, body)?;
    ipv6(web, client)?;
    let boot = print_table(if first_boot { "boot1" } else { "boot2" })?;
    if first_boot {
        restart_agent(boot.handle)?;
        print_table("restart")?;
        // Durable before the test reboots the machine.
        std::fs::write(MARKER, b"1")
            .and_then(|()| std::fs::File::open(MARKER)?.sync_all())
            .and_then(|()| std::fs::File::open("/var/lib/husk")?.sync_all())
            .map_err(|e| format!("{MARKER}: {e}"))?;
    }
    Ok(())
}

/// IMDS reaches the metadata service; CLIENT is dropped by the rule
/// that keeps containers from it.
fn metadata(client: &str, imds: &str, body: &str) -> Outcome {
    // The service may be reached only once the uplink has its lease:
    // retried, as a container at boot would.
    let mut answer = String::new();
    wait_for(DEADLINE, "the metadata service from IMDS", || {
        answer = fetch(imds, METADATA_URL).unwrap_or_else(|e| e);
        answer.contains(body)
    })
    .map_err(|e| format!("{e}: {answer}"))?;
    say(
        SCENARIO,
        &format!("metadata: {imds} (allowed) got {body:?}"),
    );
    let before = nft::dump()?.packets("metadata");
    if let Ok(got) = fetch(client, METADATA_URL) {
        return Err(format!("{client} reached the metadata service: {got:?}"));
    }
    let after = nft::dump()?.packets("metadata");
    if after <= before {
        return Err(format!(
            "{client} did not reach the metadata service, but the metadata rule \
             dropped nothing ({before} packets before, {after} after)"
        ));
    }
    say(
        SCENARIO,
        &format!(
            "metadata: {client} blocked ({} packets dropped)",
            after - before
        ),
    );
    Ok(())
}

/// CLIENT reaches WEB's IPv6 address on the bridge.
fn ipv6(web: &str, client: &str) -> Outcome {
    let info = reboot::huskctl(&["inspect", web])?;
    let info: serde_json::Value =
        serde_json::from_str(&info).map_err(|e| format!("inspect {web}: {e}"))?;
    let address = info["network"]["ipv6_address"]
        .as_str()
        .ok_or_else(|| format!("{web} has no IPv6 address: {info}"))?
        .to_owned();
    // The bridge's own prefix: unique local (fc00::/7), drawn at the first boot.
    if !address.starts_with("fd") {
        return Err(format!(
            "{web}'s IPv6 address {address} is not a unique local one"
        ));
    }
    let url = format!("http://[{address}]:8080/");
    let mut answer = String::new();
    wait_for(DEADLINE, &format!("{url} from {client}"), || {
        answer = fetch(client, &url).unwrap_or_else(|e| e);
        answer.contains(WEB_BODY)
    })
    .map_err(|e| format!("{e}: {answer}"))?;
    say(
        SCENARIO,
        &format!("ipv6: {client} reached {web} at [{address}]:8080"),
    );
    Ok(())
}

/// Prints the table as `nft LABEL: LINE` lines, then `nft LABEL: end`.
fn print_table(label: &str) -> Result<nft::Dump, String> {
    let dump = nft::dump()?;
    for line in &dump.lines {
        say(SCENARIO, &format!("nft {label}: {line}"));
    }
    let handle = dump.handle.ok_or("there is no table inet husk")?;
    say(
        SCENARIO,
        &format!(
            "nft {label}: end, {} lines, table handle {handle}",
            dump.lines.len()
        ),
    );
    Ok(dump)
}

/// SIGKILLs the agent (its shims and containers go on) and waits for
/// init's next one to have replaced the table, and to answer.
fn restart_agent(handle: Option<u64>) -> Outcome {
    let pid = agent::daemon_pid()?;
    let target = Pid::from_raw(pid).ok_or("pid 0")?;
    kill_process(target, Signal::KILL).map_err(|e| format!("kill {pid}: {e}"))?;
    say(SCENARIO, &format!("sent SIGKILL to the agent (pid {pid})"));
    wait_for(DEADLINE, "the restarted agent's table", || {
        nft::dump().is_ok_and(|d| d.handle.is_some() && d.handle != handle)
    })?;
    agent::health(&[])?;
    // Its start writes the table once, with every container it took back;
    // nothing else changes it now.
    thread::sleep(Duration::from_secs(2));
    Ok(())
}

/// `busybox wget` of `url` in `container`: the body, or why not.
fn fetch(container: &str, url: &str) -> Result<String, String> {
    let out = reboot::run_huskctl(&[
        "exec", container, "busybox", "timeout", FETCH_SECS, "busybox", "wget", "-q", "-O", "-",
        url,
    ])?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{}: {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Outcome {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return Err(format!("timed out after {limit:?} waiting for {what}"));
        }
        thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}
