//! Contexts: machines saved under a name, `<config>/contexts/NAME.toml`
//! (the address, the client's certificate and key, and the trust in the
//! machine's certificate: a CA file or a fingerprint), the current one in
//! `<config>/config.toml`, and the `huskctl context` verbs.

use std::path::{Path, PathBuf};

use husk_api::tls::Fingerprint;
use serde::{Deserialize, Serialize};

use super::host::{Address, HostUrl};
use super::write_file;

/// The local socket's name among the contexts.
pub const DEFAULT: &str = "default";

/// `[A-Za-z0-9_.-]{1,64}`, `default` included (it names the local socket).
pub fn parse_name(name: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "`{name}` is not a context name: 1 to 64 of A-Z a-z 0-9 _ . -"
        ))
    }
}

/// A name a context can be saved under: not `default`.
pub fn parse_new_name(name: &str) -> Result<String, String> {
    match parse_name(name)? {
        name if name == DEFAULT => Err("`default` is the local socket's context".to_owned()),
        name => Ok(name),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ContextFile", into = "ContextFile")]
pub struct Context {
    pub host: Address,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA of the machine's certificate; else `fingerprint` is its pin.
    pub ca: Option<PathBuf>,
    pub fingerprint: Option<Fingerprint>,
}

/// A context as its file spells it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextFile {
    host: String,
    cert: PathBuf,
    key: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fingerprint: Option<String>,
}

impl TryFrom<ContextFile> for Context {
    type Error = String;

    fn try_from(file: ContextFile) -> Result<Self, String> {
        let HostUrl::Tcp(host) = file.host.parse()? else {
            return Err(format!("host `{}`: a context is a tcp:// host", file.host));
        };
        let fingerprint = file
            .fingerprint
            .map(|f| {
                f.parse()
                    .map_err(|e: husk_api::tls::TlsError| e.to_string())
            })
            .transpose()?;
        for path in [Some(&file.cert), Some(&file.key), file.ca.as_ref()]
            .into_iter()
            .flatten()
        {
            if !path.is_absolute() {
                return Err(format!(
                    "{}: paths in a context are absolute",
                    path.display()
                ));
            }
        }
        if file.ca.is_none() && fingerprint.is_none() {
            return Err("neither ca nor fingerprint: nothing to trust the machine by".to_owned());
        }
        Ok(Self {
            host,
            cert: file.cert,
            key: file.key,
            ca: file.ca,
            fingerprint,
        })
    }
}

impl From<Context> for ContextFile {
    fn from(context: Context) -> Self {
        Self {
            host: HostUrl::Tcp(context.host).to_string(),
            cert: context.cert,
            key: context.key,
            ca: context.ca,
            fingerprint: context.fingerprint.map(|f| f.to_string()),
        }
    }
}

impl Context {
    /// `ca`, or the pin shortened: `sha256:0123456789ab…`.
    pub(crate) fn trust(&self) -> String {
        match (&self.ca, self.fingerprint) {
            (Some(_), _) => "ca".to_owned(),
            (None, Some(pin)) => format!("{}…", &pin.to_string()[..19]),
            (None, None) => "-".to_owned(),
        }
    }
}

pub(crate) fn path(config: &Path, name: &str) -> PathBuf {
    config.join("contexts").join(format!("{name}.toml"))
}

pub fn load(config: &Path, name: &str) -> Result<Context, String> {
    let path = path(config, name);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("no context {name} (huskctl context ls)"));
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
}

/// Every saved context, by name.
pub fn list(config: &Path) -> Result<Vec<(String, Context)>, String> {
    let dir = config.join("contexts");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    let mut names: Vec<String> = entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let name = name.strip_suffix(".toml")?;
            parse_new_name(name).ok()
        })
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| load(config, &name).map(|context| (name, context)))
        .collect()
}

pub fn save(config: &Path, name: &str, context: &Context, replace: bool) -> Result<(), String> {
    let path = path(config, name);
    super::ensure_dir(path.parent().unwrap_or(config))?;
    let text = toml::to_string(context).map_err(|e| e.to_string())?;
    write_file(&path, text.as_bytes(), 0o600, replace)
}

fn config_file(config: &Path) -> PathBuf {
    config.join("config.toml")
}

fn read_config(config: &Path) -> Result<toml::Table, String> {
    let path = config_file(config);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(toml::Table::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// config.toml's `context`.
pub fn current(config: &Path) -> Result<Option<String>, String> {
    let bad = |why: String| format!("{}: context: {why}", config_file(config).display());
    match read_config(config)?.get("context") {
        None => Ok(None),
        Some(toml::Value::String(name)) => parse_name(name).map(Some).map_err(bad),
        Some(other) => Err(bad(format!("a name, not {other}"))),
    }
}

/// Makes `name` current; `None` (or `default`) clears it. Other keys
/// of config.toml are kept.
pub fn set_current(config: &Path, name: Option<&str>) -> Result<(), String> {
    let mut table = read_config(config)?;
    match name.filter(|&name| name != DEFAULT) {
        Some(name) => table.insert("context".into(), name.into()),
        None => table.remove("context"),
    };
    super::ensure_dir(config)?;
    let text = toml::to_string(&table).map_err(|e| e.to_string())?;
    write_file(&config_file(config), text.as_bytes(), 0o644, true)
}

mod command;

pub use command::{ContextCommand, Globals, run};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_names() {
        for good in ["prod", "a", "web-1.eu_west", "default", &"x".repeat(64)] {
            assert_eq!(parse_name(good).as_deref(), Ok(good));
        }
        for bad in ["", "a/b", "../x", "é", "a b", &"x".repeat(65)] {
            assert!(
                parse_name(bad).unwrap_err().contains("not a context name"),
                "{bad}"
            );
        }
        assert!(parse_new_name("default").is_err());
        assert_eq!(parse_new_name("prod").as_deref(), Ok("prod"));
    }

    fn context(fingerprint: Option<Fingerprint>) -> Context {
        Context {
            host: "192.0.2.7:7443".parse().unwrap(),
            cert: "/etc/husk/cert.pem".into(),
            key: "/etc/husk/key.pem".into(),
            ca: fingerprint.is_none().then(|| "/etc/husk/ca.pem".into()),
            fingerprint,
        }
    }

    #[test]
    fn contexts_are_saved_listed_and_current() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("husk");
        let pin = Fingerprint::of(b"machine");
        assert!(list(&config).unwrap().is_empty());
        assert_eq!(current(&config).unwrap(), None);
        save(&config, "prod", &context(Some(pin)), false).unwrap();
        save(&config, "lab", &context(None), false).unwrap();
        assert!(
            save(&config, "lab", &context(None), false)
                .unwrap_err()
                .contains("exists")
        );
        save(&config, "lab", &context(Some(pin)), true).unwrap();
        let text = std::fs::read_to_string(config.join("contexts/prod.toml")).unwrap();
        assert!(text.contains("host = \"tcp://192.0.2.7:7443\""), "{text}");
        assert!(text.contains(&format!("fingerprint = \"{pin}\"")), "{text}");
        let names: Vec<_> = list(&config).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["lab", "prod"]);
        assert_eq!(load(&config, "prod").unwrap(), context(Some(pin)));
        assert_eq!(
            context(Some(pin)).trust(),
            format!("{}…", &pin.to_string()[..19])
        );
        assert_eq!(context(None).trust(), "ca");
        assert!(
            load(&config, "nope")
                .unwrap_err()
                .contains("no context nope")
        );

        std::fs::write(config.join("config.toml"), "other = 1\n").unwrap();
        set_current(&config, Some("prod")).unwrap();
        assert_eq!(current(&config).unwrap().as_deref(), Some("prod"));
        set_current(&config, Some(DEFAULT)).unwrap();
        assert_eq!(current(&config).unwrap(), None);
        assert_eq!(
            std::fs::read_to_string(config.join("config.toml")).unwrap(),
            "other = 1\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn bad_context_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let contexts = dir.path().join("contexts");
        std::fs::create_dir(&contexts).unwrap();
        for (text, why) in [
            (
                "host = \"unix:///x\"\ncert = \"/c\"\nkey = \"/k\"\nca = \"/a\"\n",
                "tcp://",
            ),
            (
                "host = \"tcp://n:1\"\ncert = \"c\"\nkey = \"/k\"\nca = \"/a\"\n",
                "absolute",
            ),
            (
                "host = \"tcp://n:1\"\ncert = \"/c\"\nkey = \"/k\"\n",
                "neither ca nor",
            ),
            (
                "host = \"tcp://n:1\"\ncert = \"/c\"\nkey = \"/k\"\nfingerprint = \"x\"\n",
                "`x`",
            ),
            (
                "host = \"tcp://n:1\"\ncert = \"/c\"\nkey = \"/k\"\nca = \"/a\"\nx = 1\n",
                "unknown",
            ),
        ] {
            std::fs::write(contexts.join("bad.toml"), text).unwrap();
            let e = load(dir.path(), "bad").unwrap_err();
            assert!(e.contains("bad.toml") && e.contains(why), "{text}: {e}");
        }
        std::fs::write(dir.path().join("config.toml"), "context = \"../x\"\n").unwrap();
        assert!(
            current(dir.path())
                .unwrap_err()
                .contains("not a context name")
        );
    }
}
