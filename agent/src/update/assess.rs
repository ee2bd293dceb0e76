//! After boot: was the last update rolled back, and is this boot good?
//!
//! A version on trial (systemd-boot started an entry with a `+N` counter
//! and said so in `LoaderBootCountPath`, which husk-init publishes in
//! boot.json) proves itself:
//! the agent serves, every container with an `always`/`unless-stopped`
//! policy runs, and every configured health check answers 2xx, all within
//! `assessment_timeout_secs`. Then its entry is blessed. Otherwise the
//! reason is recorded on the data partition and the machine reboots;
//! systemd-boot spends a try each boot, and once they are spent boots the
//! previous version, whose agent reports the rollback with that reason.

use std::cmp::Ordering;
use std::time::Duration;

use husk_common::boot::Trial;
use husk_release::{BootEntry, compare_versions};

use super::state::{Failure, Rollback, StateFile, now};
use super::{HealthCheck, Updater};
use crate::containers::{Manager, Status};
use husk_spec::RestartPolicy;

/// Between two rounds of checks.
const RETRY: Duration = Duration::from_secs(2);
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks husk-init to reboot after `reason` is logged and a moment for
/// the API answer to leave.
pub fn reboot_soon(reason: String) {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        log::warn!("update: rebooting: {reason}");
        if let Err(e) = super::mount::request_reboot() {
            log::error!("update: cannot ask init to reboot: {e}");
        }
    });
}

/// Whether this boot must prove itself.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Judgement {
    NotOnTrial(&'static str),
    Blessed,
    OnTrial { tries_left: u32 },
}

/// husk-init's boot facts decide when it could read the boot loader's
/// variables: systemd-boot sets `LoaderBootCountPath` when it starts an
/// entry that still counts tries. Without them (no facts, efivarfs not
/// readable) the running version's entry on the ESP is the witness: a
/// counter in its name means on trial. On the last try the entry
/// already reads `+0-N` (systemd-boot counted this boot before it).
fn judge(trial: Option<&Trial>, running: &str, entries: &[BootEntry]) -> Judgement {
    let own = entries.iter().find(|e| e.version == running);
    let tries_of = |entry: Option<&BootEntry>| entry.and_then(|e| e.tries).map_or(0, |t| t.left);
    match trial {
        Some(trial) if trial.efi => {
            if !trial.on_trial {
                return Judgement::Blessed;
            }
            let entry = trial.entry_name().and_then(BootEntry::parse);
            if let Some(other) = entry.as_ref().filter(|e| e.version != running) {
                log::warn!(
                    "update: the boot loader's trial entry {} is not the running version {running}",
                    other.file_name()
                );
            }
            Judgement::OnTrial {
                tries_left: tries_of(entry.as_ref().or(own)),
            }
        }
        _ => match own {
            None => Judgement::NotOnTrial("no boot entry of the running version"),
            Some(entry) if entry.tries.is_none() => Judgement::Blessed,
            Some(entry) => Judgement::OnTrial {
                tries_left: tries_of(Some(entry)),
            },
        },
    }
}

impl Updater {
    /// Runs once at startup on a Husk machine.
    pub async fn assess_boot(&self, containers: &Manager) {
        let Some(running) = self.running_version().map(str::to_owned) else {
            self.set_assessment("unknown: no running version");
            return;
        };
        let Ok(esp) = self.esp().cloned() else {
            self.set_assessment("unknown: no ESP");
            return;
        };
        let entries = match esp.entries() {
            Ok(entries) => entries,
            Err(e) => {
                log::error!("update: reading {}: {e}", esp.dir().display());
                self.set_assessment(format!("unknown: {e}"));
                return;
            }
        };
        self.note_rollback(&running, &entries);
        let tries_left = match judge(self.inner.trial.as_ref(), &running, &entries) {
            Judgement::NotOnTrial(why) => {
                self.set_assessment(format!("not on trial ({why})"));
                return;
            }
            Judgement::Blessed => {
                self.set_assessment("blessed");
                self.update_state(|s| {
                    if s.pending.as_ref().is_some_and(|p| p.version == running) {
                        s.pending = None;
                    }
                });
                return;
            }
            Judgement::OnTrial { tries_left } => tries_left,
        };
        self.set_assessment("assessing");
        let settings = self.settings();
        let deadline = Duration::from_secs(settings.assessment_timeout_secs);
        log::info!(
            "update: {running} is on trial ({tries_left} tries left); assessing for up to {deadline:?}"
        );
        // What was wrong at the last look: the reason if time runs out.
        let mut last = String::from("no check finished before the deadline");
        let healthy = until_healthy(containers, &settings.health_checks, &mut last);
        match tokio::time::timeout(deadline, healthy).await {
            Ok(()) => match esp.bless(&running) {
                Ok(_) => {
                    self.set_assessment("blessed");
                    self.update_state(|s| {
                        s.pending = None;
                        s.event(format!(
                            "{running} passed its boot assessment and is blessed"
                        ));
                    });
                }
                Err(e) => {
                    log::error!("update: blessing {running}: {e}");
                    self.set_assessment(format!("healthy, but blessing failed: {e}"));
                }
            },
            Err(_) => {
                let reason = format!("not healthy within {deadline:?}: {last}");
                self.set_assessment(format!("failed: {reason}"));
                self.update_state(|s| {
                    s.failures.push(Failure {
                        version: running.clone(),
                        reason: reason.clone(),
                        at: now(),
                    });
                    if s.failures.len() > 16 {
                        s.failures.remove(0);
                    }
                    s.event(format!("{running} failed its boot assessment: {reason}"));
                });
                if self.inner.may_reboot {
                    reboot_soon(format!("{running} failed its boot assessment"));
                }
            }
        }
    }

    /// A newer version whose tries are spent, while an older one runs: a
    /// rollback. Recorded once, with the reason the failed version gave.
    fn note_rollback(&self, running: &str, entries: &[husk_release::BootEntry]) {
        let Some(failed) = entries
            .iter()
            .find(|e| e.exhausted() && compare_versions(&e.version, running) == Ordering::Greater)
        else {
            return;
        };
        let state = super::lock(&self.inner.state).clone();
        if state
            .last_rollback
            .as_ref()
            .is_some_and(|r| r.from_version == failed.version && r.to_version == running)
            && state.pending.is_none()
        {
            return;
        }
        let reason = if state.rollback_requested_from.as_deref() == Some(failed.version.as_str()) {
            "rolled back on request".to_owned()
        } else {
            match state.failure_of(&failed.version) {
                Some(failure) => format!(
                    "{} tries spent; last failure: {}",
                    failed.tries.map_or(0, |t| t.done),
                    failure.reason
                ),
                None => format!(
                    "{} tries spent without reaching its assessment (crash, hang or panic)",
                    failed.tries.map_or(0, |t| t.done)
                ),
            }
        };
        self.update_state(|s| {
            s.last_rollback = Some(Rollback {
                from_version: failed.version.clone(),
                to_version: running.to_owned(),
                reason: reason.clone(),
                at: now(),
            });
            s.pending = None;
            s.rollback_requested_from = None;
            s.event(format!(
                "rolled back from {} to {running}: {reason}",
                failed.version
            ));
        });
    }

    /// Checks now and then; applies in the configured window.
    pub async fn run_background(&self) {
        loop {
            let settings = self.settings();
            let interval = settings.check_interval_secs;
            if interval == 0 || settings.repository.is_none() {
                tokio::time::sleep(Duration::from_secs(60)).await;
                continue;
            }
            tokio::time::sleep(Duration::from_secs(interval)).await;
            match self.check().await {
                Ok(outcome) if outcome.version.is_some() => {
                    let in_window = settings
                        .apply_window
                        .as_deref()
                        .and_then(|w| super::settings::parse_window(w).ok())
                        .is_some_and(|w| super::settings::in_window(w, minute_of_day()));
                    if in_window {
                        if let Err(e) = self.apply(&super::ApplyRequest::default()).await {
                            log::error!("update: automatic apply: {e}");
                        }
                    } else {
                        log::info!("update: {}", outcome.message);
                    }
                }
                Ok(_) => {}
                Err(e) => log::warn!("update: check: {e}"),
            }
        }
    }
}

fn minute_of_day() -> u32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    ((secs % 86_400) / 60) as u32
}

/// Checks until all is well, keeping the latest reason in `last`.
async fn until_healthy(containers: &Manager, checks: &[HealthCheck], last: &mut String) {
    while let Some(reason) = unhealthy(containers, checks).await {
        *last = reason;
        tokio::time::sleep(RETRY).await;
    }
}

/// What is not healthy yet, or `None`.
pub async fn unhealthy(containers: &Manager, checks: &[HealthCheck]) -> Option<String> {
    let down: Vec<String> = containers
        .list()
        .into_iter()
        .filter(|c| {
            matches!(
                c.restart_policy,
                RestartPolicy::Always | RestartPolicy::UnlessStopped
            ) && !c.manually_stopped
                && c.status != Status::Running
        })
        .map(|c| format!("{} is {}", c.name, c.status))
        .collect();
    if !down.is_empty() {
        return Some(format!("containers not running: {}", down.join(", ")));
    }
    for check in checks {
        if let Err(e) = http_check(check).await {
            return Some(format!("health check {:?}: {e}", check.name));
        }
    }
    None
}

async fn http_check(check: &HealthCheck) -> Result<(), String> {
    let url = url::Url::parse(&check.http).map_err(|e| e.to_string())?;
    let response = crate::http_client::get(&url, 0, CHECK_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    if (200..300).contains(&response.status) {
        Ok(())
    } else {
        Err(format!("{} answered HTTP {}", check.http, response.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(names: &[&str]) -> Vec<BootEntry> {
        names.iter().map(|n| BootEntry::parse(n).unwrap()).collect()
    }

    #[test]
    fn the_boot_loaders_word_decides_when_init_could_read_it() {
        let on_esp = entries(&["husk-2.0+2-1.efi", "husk-1.0.efi"]);
        let trial = Trial::new(true, Some("\\EFI\\Linux\\husk-2.0+2-1.efi".into()));
        assert_eq!(
            judge(Some(&trial), "2.0", &on_esp),
            Judgement::OnTrial { tries_left: 2 }
        );
        // The last try: systemd-boot already counted it down to +0.
        let last = Trial::new(true, Some("\\EFI\\Linux\\husk-2.0+0-3.efi".into()));
        assert_eq!(
            judge(Some(&last), "2.0", &entries(&["husk-2.0+0-3.efi"])),
            Judgement::OnTrial { tries_left: 0 }
        );
        // No LoaderBootCountPath: a blessed entry was started, whatever
        // the ESP's names say.
        let blessed = Trial::new(true, None);
        assert_eq!(judge(Some(&blessed), "2.0", &on_esp), Judgement::Blessed);
    }

    #[test]
    fn without_the_boot_loaders_word_the_entry_name_decides() {
        let unreadable = Trial::unknown();
        for trial in [None, Some(&unreadable)] {
            assert_eq!(
                judge(trial, "2.0", &entries(&["husk-2.0+1-2.efi"])),
                Judgement::OnTrial { tries_left: 1 }
            );
            assert_eq!(
                judge(trial, "2.0", &entries(&["husk-2.0.efi"])),
                Judgement::Blessed
            );
            assert_eq!(
                judge(trial, "2.0", &entries(&["husk-1.0.efi"])),
                Judgement::NotOnTrial("no boot entry of the running version")
            );
        }
    }
}
