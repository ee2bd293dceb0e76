//! init.toml for test images, rendered from typed values so a test
//! cannot get the quoting wrong. Broken configurations (to test init's
//! error reporting) are written as plain strings instead.

use serde::Serialize;

use crate::guest_image::CHECKER_GUEST_PATH;

#[derive(Debug, Clone, Serialize, Default)]
pub struct InitConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules: Option<Vec<String>>,
    #[serde(rename = "service")]
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub name: String,
    pub command: Vec<String>,
    pub restart: Restart,
    pub notify: bool,
    /// `reboot-on-trial` for the agent, as in the product.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_crash_loop: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    Always,
    OnFailure,
    Never,
}

impl Service {
    /// The agent as the default configuration runs it.
    pub fn agent() -> Service {
        Service {
            name: "husk-agent".to_owned(),
            command: vec![husk_common::paths::AGENT_BIN.to_owned()],
            restart: Restart::Always,
            notify: true,
            on_crash_loop: Some("reboot-on-trial".to_owned()),
        }
    }

    /// `husk-check <args…>` as service `name`.
    pub fn checker(name: &str, args: &[&str], restart: Restart) -> Service {
        let mut command = vec![CHECKER_GUEST_PATH.to_owned()];
        command.extend(args.iter().map(|a| a.to_string()));
        Service {
            name: name.to_owned(),
            command,
            restart,
            notify: false,
            on_crash_loop: None,
        }
    }
}

impl InitConfig {
    /// Like the product default: the agent and nothing else.
    pub fn with_agent() -> InitConfig {
        InitConfig {
            services: vec![Service::agent()],
            ..InitConfig::default()
        }
    }

    pub fn service(mut self, service: Service) -> Self {
        self.services.push(service);
        self
    }

    /// A one-shot `husk-check <scenario>` service named `name`, whose
    /// output reaches the console as `name: husk-check: <scenario>: PASS`.
    pub fn check(self, name: &str, scenario: &str) -> Self {
        self.service(Service::checker(name, &[scenario], Restart::Never))
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("InitConfig always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_services_as_an_array_of_tables() {
        let config = InitConfig {
            shutdown_timeout_secs: Some(5),
            ..InitConfig::with_agent()
        }
        .check("check-mounts", "mounts");
        let text = config.to_toml();
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["shutdown_timeout_secs"].as_integer(), Some(5));
        assert!(!parsed.contains_key("hostname"));
        let services = parsed["service"].as_array().unwrap();
        assert_eq!(services.len(), 2);
        assert_eq!(services[0]["name"].as_str(), Some("husk-agent"));
        assert_eq!(services[0]["restart"].as_str(), Some("always"));
        assert_eq!(services[0]["notify"].as_bool(), Some(true));
        assert_eq!(services[1]["restart"].as_str(), Some("never"));
        let command: Vec<_> = services[1]["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(command, [CHECKER_GUEST_PATH, "mounts"]);
        assert!(text.contains("[[service]]"), "{text}");
    }

    #[test]
    fn restart_policies_use_the_documented_spelling() {
        let on_failure = Service::checker("x", &[], Restart::OnFailure);
        let text = InitConfig::default().service(on_failure).to_toml();
        assert!(text.contains("restart = \"on-failure\""), "{text}");
    }
}
