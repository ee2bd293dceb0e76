//! `husk-image build`'s configuration (`image.toml`): the built-in
//! defaults ([`DEFAULT_CONFIG`]) with the user's file laid over them field
//! by field. Errors name the file, line:column and the field.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::{esp, ext4, gpt, vhd};

/// The built-in configuration, also the documentation of the format.
pub const DEFAULT_CONFIG: &str = include_str!("default-image.toml");
/// The name errors give the built-in configuration.
const BUILT_IN: &str = "<built-in image.toml>";
const MIB: u64 = 1 << 20;
/// The kernel's COMMAND_LINE_SIZE on x86, terminating NUL included.
const MAX_CMDLINE: usize = 2047;

/// A disk image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Raw,
    Qcow2,
    Vhd,
}

impl Format {
    /// The output file name.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Raw => "disk.raw",
            Format::Qcow2 => "disk.qcow2",
            Format::Vhd => "disk.vhd",
        }
    }
}

/// The configuration, resolved: defaults filled in, values checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub version: String,
    pub cmdline: String,
    pub seed: String,
    pub esp_size: u64,
    pub data_size: u64,
    /// `None`: ESP + data + GPT overhead.
    pub disk_size: Option<u64>,
    /// In a fixed order (raw, qcow2, vhd), without duplicates.
    pub formats: Vec<Format>,
    pub modules: Vec<String>,
    pub zstd_level: i32,
    /// The init.toml to install (absolute, or relative to the current
    /// directory); `None`: the built-in one.
    pub init_config: Option<PathBuf>,
    /// The agent.toml to install as [`AGENT_CONFIG_GUEST`].
    pub agent_config: Option<Given<PathBuf>>,
    /// The update repository's root.json to pin as [`UPDATE_ROOT_GUEST`].
    pub update_root: Option<Given<PathBuf>>,
    /// More files for the initramfs, in file order.
    pub extra_files: Vec<Given<ExtraFile>>,
}

/// Where the agent reads its configuration (husk-agent's
/// `config::DEFAULT_PATH`; husk-image must not link the agent, so the
/// QEMU tests, which see both, check the two agree).
pub const AGENT_CONFIG_GUEST: &str = "/etc/husk/agent.toml";
/// Where the agent finds the pinned TUF root (husk-agent's
/// `update::settings::DEFAULT_ROOT`).
pub const UPDATE_ROOT_GUEST: &str = "/etc/husk/update/root.json";
/// An extra file's mode when none is given.
pub const DEFAULT_FILE_MODE: u32 = 0o644;

/// Where a value was given: a field of a file, or a flag. Errors about
/// the value (a file that cannot be read, or is invalid) start with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub position: Option<(usize, usize)>,
    /// The field (`agent_config`, `extra_files[0].host`) or the flag.
    pub field: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}", self.field)
    }
}

impl Origin {
    /// A command-line flag.
    pub fn flag(flag: &str) -> Origin {
        Origin {
            file: "command line".into(),
            position: None,
            field: flag.to_owned(),
        }
    }

    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            position: self.position,
            field: Some(self.field.clone()),
            message: message.into(),
        }
    }
}

/// A value with where it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given<T> {
    pub value: T,
    pub origin: Origin,
}

/// A host file copied into the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    /// On the build host.
    pub host: PathBuf,
    /// Absolute, in the image.
    pub guest: String,
    pub mode: u32,
}

/// Why `guest` cannot be a path in the image, if it cannot.
pub fn check_guest_path(guest: &str) -> Result<(), String> {
    let ok = guest.strip_prefix('/').is_some_and(|p| {
        !p.is_empty() && !p.split('/').any(|c| c.is_empty() || c == "." || c == "..")
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{guest:?}: the path in the image must be absolute, without empty, . or .. components"
        ))
    }
}

fn check_mode(mode: i64) -> Result<u32, String> {
    u32::try_from(mode)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("{mode}: a mode is at most 0o7777"))
}

/// `--extra-file HOST:GUEST[:MODE]`: split from the right, so the host
/// path may hold colons; the guest path starts with `/`, the mode is
/// octal (`644`, `0755`, `0o600`).
impl std::str::FromStr for ExtraFile {
    type Err = String;

    fn from_str(text: &str) -> Result<ExtraFile, String> {
        let usage = || format!("{text:?}: use HOST:GUEST[:MODE], e.g. motd:/etc/motd:0644");
        let (rest, last) = text.rsplit_once(':').ok_or_else(usage)?;
        let (host, guest, mode) = if last.starts_with('/') {
            (rest, last, DEFAULT_FILE_MODE)
        } else {
            let (host, guest) = rest.rsplit_once(':').ok_or_else(usage)?;
            let digits = last.strip_prefix("0o").unwrap_or(last);
            let not_octal = || format!("{text:?}: {last:?} is not an octal mode (e.g. 0644)");
            let parsed = i64::from_str_radix(digits, 8).map_err(|_| not_octal())?;
            let mode = check_mode(parsed).map_err(|_| not_octal())?;
            (host, guest, mode)
        };
        if host.is_empty() {
            return Err(usage());
        }
        check_guest_path(guest)?;
        Ok(ExtraFile {
            host: PathBuf::from(host),
            guest: guest.to_owned(),
            mode,
        })
    }
}

/// A configuration error: the file, where in it, which field, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column (in characters).
    pub position: Option<(usize, usize)>,
    /// The field's dotted path (`esp.size_mib`, `formats[1]`).
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The file as written: every field optional, with where it was written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    version: Option<Spanned<String>>,
    cmdline: Option<Spanned<String>>,
    seed: Option<Spanned<String>>,
    formats: Option<Spanned<Vec<Spanned<Format>>>>,
    init_config: Option<Spanned<String>>,
    agent_config: Option<Spanned<String>>,
    update_root: Option<Spanned<String>>,
    extra_files: Option<Vec<ExtraFileSection>>,
    esp: Option<SizeSection>,
    data: Option<SizeSection>,
    disk: Option<SizeSection>,
    initramfs: Option<InitramfsSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtraFileSection {
    host: Spanned<String>,
    guest: Spanned<String>,
    mode: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SizeSection {
    size_mib: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InitramfsSection {
    modules: Option<Spanned<Vec<Spanned<String>>>>,
    zstd_level: Option<Spanned<i64>>,
}

/// A value and the text it came from, for error positions.
struct Source<'a> {
    name: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn origin(&self, span: std::ops::Range<usize>, field: String) -> Origin {
        Origin {
            file: self.name.to_owned(),
            position: Some(line_column(self.text, span.start)),
            field,
        }
    }

    /// A path field of the user's file, relative to `base` (the file's
    /// directory).
    fn path(
        &self,
        value: Option<Spanned<String>>,
        field: &str,
        base: &Path,
    ) -> Result<Option<Given<PathBuf>>, ConfigError> {
        let Some(value) = value else {
            return Ok(None);
        };
        let origin = self.origin(value.span(), field.to_owned());
        if value.get_ref().is_empty() {
            return Err(origin.error("must not be empty"));
        }
        Ok(Some(Given {
            value: base.join(value.get_ref()),
            origin,
        }))
    }

    fn error(
        &self,
        span: Option<std::ops::Range<usize>>,
        field: &str,
        message: String,
    ) -> ConfigError {
        ConfigError {
            file: self.name.to_owned(),
            position: span.map(|s| line_column(self.text, s.start)),
            field: Some(field.to_owned()),
            message,
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// The dotted path of the key or value at `offset`, the deepest one.
fn field_at(table: &DeTable<'_>, offset: usize) -> Option<String> {
    fn in_value(value: &Spanned<DeValue<'_>>, offset: usize, path: String) -> Option<String> {
        match value.get_ref() {
            DeValue::Table(table) => {
                if let Some(inner) = in_table(table, offset, &path) {
                    return Some(inner);
                }
            }
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(inner) = in_value(item, offset, format!("{path}[{i}]")) {
                        return Some(inner);
                    }
                }
            }
            _ => {}
        }
        value.span().contains(&offset).then_some(path)
    }
    fn in_table(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            if key.span().contains(&offset) {
                return Some(path);
            }
            if let Some(found) = in_value(value, offset, path) {
                return Some(found);
            }
        }
        None
    }
    in_table(table, offset, "")
}

/// Parses one file (the built-in one or the user's) into [`FileConfig`].
fn parse(source: &Source<'_>) -> Result<FileConfig, ConfigError> {
    toml::from_str(source.text).map_err(|e| {
        let span = e.span();
        let (table, _) = DeTable::parse_recoverable(source.text);
        let field = span
            .as_ref()
            .and_then(|s| field_at(table.get_ref(), s.start));
        ConfigError {
            file: source.name.to_owned(),
            position: span.map(|s| line_column(source.text, s.start)),
            field,
            message: e.message().trim().to_owned(),
        }
    })
}

/// A field's value and the file it came from.
struct Set<'a, T> {
    value: Spanned<T>,
    source: &'a Source<'a>,
}

impl<T> Set<'_, T> {
    fn fail(&self, field: &str, message: impl Into<String>) -> ConfigError {
        self.source
            .error(Some(self.value.span()), field, message.into())
    }
    fn get(&self) -> &T {
        self.value.get_ref()
    }
}

/// The user's value if given, else the default's.
fn pick<'a, T>(
    user: Option<Spanned<T>>,
    user_source: &'a Source<'a>,
    default: Option<Spanned<T>>,
    default_source: &'a Source<'a>,
) -> Option<Set<'a, T>> {
    match (user, default) {
        (Some(value), _) => Some(Set {
            value,
            source: user_source,
        }),
        (None, Some(value)) => Some(Set {
            value,
            source: default_source,
        }),
        (None, None) => None,
    }
}

fn size_of(section: Option<SizeSection>) -> Option<Spanned<u64>> {
    section.and_then(|s| s.size_mib)
}

fn check_size(
    set: &Set<'_, u64>,
    field: &str,
    min_mib: u64,
    max_mib: u64,
) -> Result<u64, ConfigError> {
    let mib = *set.get();
    if mib < min_mib || mib > max_mib {
        return Err(set.fail(
            field,
            format!("{mib} MiB: must be between {min_mib} and {max_mib}"),
        ));
    }
    Ok(mib * MIB)
}

impl Config {
    /// The built-in configuration.
    pub fn built_in() -> Result<Config, ConfigError> {
        Self::resolve(None)
    }

    /// Reads `path` and lays it over the defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            position: None,
            field: None,
            message: format!("cannot read: {e}"),
        })?;
        Self::resolve(Some((path, &text)))
    }

    /// `user`: the user's file (its path and text), over the defaults.
    pub fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
        Self::resolve(Some((path, text)))
    }

    fn resolve(user: Option<(&Path, &str)>) -> Result<Config, ConfigError> {
        let defaults = Source {
            name: BUILT_IN,
            text: DEFAULT_CONFIG,
        };
        let user_name = user.map(|(p, _)| p.display().to_string());
        let user_source = Source {
            name: user_name.as_deref().unwrap_or(BUILT_IN),
            text: user.map_or("", |(_, t)| t),
        };
        let d = parse(&defaults)?;
        let u = if user.is_some() {
            parse(&user_source)?
        } else {
            FileConfig::default()
        };
        let (us, ds) = (&user_source, &defaults);

        let version = match pick(u.version, us, d.version, ds) {
            Some(set) => {
                let v = set.get();
                let ok = !v.is_empty()
                    && v.len() <= 64
                    && v.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '^' | '-')
                    });
                if !ok {
                    return Err(set.fail(
                        "version",
                        format!("{v:?}: use 1 to 64 letters, digits and . _ ~ ^ - only"),
                    ));
                }
                v.clone()
            }
            None => env!("CARGO_PKG_VERSION").to_owned(),
        };

        let set = pick(u.cmdline, us, d.cmdline, ds).expect("the built-in config sets cmdline");
        let cmdline = set.get().trim().to_owned();
        if cmdline.contains(['\0', '\n', '\r']) || cmdline.len() > MAX_CMDLINE {
            return Err(set.fail(
                "cmdline",
                format!("at most {MAX_CMDLINE} bytes on one line, without NUL"),
            ));
        }

        let set = pick(u.seed, us, d.seed, ds).expect("the built-in config sets seed");
        if set.get().is_empty() {
            return Err(set.fail("seed", "must not be empty"));
        }
        let seed = set.get().clone();

        let formats_set =
            pick(u.formats, us, d.formats, ds).expect("the built-in config sets formats");
        let set = &formats_set;
        if set.get().is_empty() {
            return Err(set.fail(
                "formats",
                "name at least one of \"raw\", \"qcow2\", \"vhd\"",
            ));
        }
        let mut formats: Vec<Format> = Vec::new();
        for (i, format) in set.get().iter().enumerate() {
            if formats.contains(format.get_ref()) {
                return Err(set.source.error(
                    Some(format.span()),
                    &format!("formats[{i}]"),
                    format!("{:?} is listed twice", format.get_ref()),
                ));
            }
            formats.push(*format.get_ref());
        }
        formats.sort();

        let set = pick(size_of(u.esp), us, size_of(d.esp), ds).expect("built-in esp.size_mib");
        let esp_size = check_size(
            &set,
            "esp.size_mib",
            esp::MIN_ESP_SIZE / MIB,
            (2 << 40) / MIB,
        )?;
        let set = pick(size_of(u.data), us, size_of(d.data), ds).expect("built-in data.size_mib");
        let data_size = check_size(
            &set,
            "data.size_mib",
            ext4::MIN_SIZE / MIB,
            (16 << 40) / MIB,
        )?;
        // The GPT writer's layout: 1 MiB before the first partition, both
        // partitions whole MiB, the backup GPT in one more MiB.
        let needed = gpt::ALIGNMENT + esp_size + data_size + MIB;
        let disk_size = match pick(size_of(u.disk), us, size_of(d.disk), ds) {
            Some(set) => {
                let max = if formats.contains(&Format::Vhd) {
                    vhd::MAX_SIZE
                } else {
                    64 << 40
                };
                Some(check_size(&set, "disk.size_mib", needed / MIB, max / MIB)?)
            }
            None => None,
        };
        if formats.contains(&Format::Vhd) && disk_size.unwrap_or(needed) > vhd::MAX_SIZE {
            return Err(formats_set.fail(
                "formats",
                format!(
                    "a {} MiB disk is larger than a VHD can be ({} MiB)",
                    disk_size.unwrap_or(needed) / MIB,
                    vhd::MAX_SIZE / MIB
                ),
            ));
        }

        let (u_init, d_init) = (
            u.initramfs.unwrap_or_default(),
            d.initramfs.unwrap_or_default(),
        );
        let mut modules = Vec::new();
        if let Some(set) = pick(u_init.modules, us, d_init.modules, ds) {
            for (i, name) in set.get().iter().enumerate() {
                let n = name.get_ref();
                if n.is_empty()
                    || !n
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(set.source.error(
                        Some(name.span()),
                        &format!("initramfs.modules[{i}]"),
                        format!("{n:?} is not a module name (letters, digits, _ and -)"),
                    ));
                }
                modules.push(n.clone());
            }
        }
        let zstd_level = match pick(u_init.zstd_level, us, d_init.zstd_level, ds) {
            Some(set) => {
                let level = *set.get();
                if !(1..=22).contains(&level) {
                    return Err(set.fail(
                        "initramfs.zstd_level",
                        format!("{level}: must be between 1 and 22"),
                    ));
                }
                level as i32
            }
            None => crate::initramfs::DEFAULT_ZSTD_LEVEL,
        };

        let init_config = match (u.init_config, user) {
            (Some(value), Some((path, _))) => {
                let set = Set { value, source: us };
                if set.get().is_empty() {
                    return Err(set.fail("init_config", "must not be empty"));
                }
                let base = path.parent().unwrap_or(Path::new(""));
                Some(base.join(set.get()))
            }
            _ => None,
        };

        // Paths only the user's file gives (the built-in one has none),
        // relative to that file.
        let base = user
            .and_then(|(path, _)| path.parent())
            .unwrap_or(Path::new(""));
        let agent_config = us.path(u.agent_config, "agent_config", base)?;
        let update_root = us.path(u.update_root, "update_root", base)?;
        let mut extra_files = Vec::new();
        for (i, entry) in u.extra_files.unwrap_or_default().into_iter().enumerate() {
            let field = |name: &str| format!("extra_files[{i}].{name}");
            let host = us
                .path(Some(entry.host), &field("host"), base)?
                .expect("given");
            let guest_origin = us.origin(entry.guest.span(), field("guest"));
            check_guest_path(entry.guest.get_ref()).map_err(|e| guest_origin.error(e))?;
            let mode = match entry.mode {
                Some(mode) => check_mode(*mode.get_ref())
                    .map_err(|e| us.origin(mode.span(), field("mode")).error(e))?,
                None => DEFAULT_FILE_MODE,
            };
            extra_files.push(Given {
                value: ExtraFile {
                    host: host.value,
                    guest: entry.guest.into_inner(),
                    mode,
                },
                origin: host.origin,
            });
        }

        Ok(Config {
            version,
            cmdline,
            seed,
            esp_size,
            data_size,
            disk_size,
            formats,
            modules,
            zstd_level,
            init_config,
            agent_config,
            update_root,
            extra_files,
        })
    }

    /// The disk size the build will write.
    pub fn disk_size(&self) -> u64 {
        self.disk_size
            .unwrap_or(gpt::ALIGNMENT + self.esp_size + self.data_size + MIB)
    }
}

/// Checks a file's TOML syntax (init.toml, agent.toml: husk-init and the
/// agent check their meaning at boot), so a typo fails the build rather
/// than the boot.
pub fn check_toml(path: &Path, text: &str) -> Result<(), ConfigError> {
    toml::from_str::<toml::Table>(text)
        .map(|_| ())
        .map_err(|e| ConfigError {
            file: path.display().to_string(),
            position: e.span().map(|s| line_column(text, s.start)),
            field: None,
            message: e.message().trim().to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_text(Path::new("conf/image.toml"), text)
    }

    fn error(text: &str) -> ConfigError {
        load(text).expect_err(text)
    }

    #[test]
    fn defaults() {
        let c = Config::built_in().unwrap();
        assert_eq!(c.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(c.cmdline, "console=tty0 console=ttyS0,115200n8 panic=-1");
        assert!(
            c.cmdline
                .split_whitespace()
                .rfind(|w| w.starts_with("console="))
                .unwrap()
                .starts_with("console=ttyS0"),
            "the serial console must be last, so it is /dev/console"
        );
        assert_eq!(c.seed, "husk");
        assert_eq!(c.esp_size, 256 * MIB);
        assert_eq!(c.data_size, 1024 * MIB);
        assert_eq!(c.disk_size, None);
        assert_eq!(c.disk_size(), (1 + 256 + 1024 + 1) * MIB);
        assert_eq!(c.formats, [Format::Raw, Format::Qcow2, Format::Vhd]);
        assert!(c.modules.is_empty());
        assert_eq!(c.zstd_level, 19);
        assert_eq!(c.init_config, None);
        // An empty file is the defaults.
        assert_eq!(load("").unwrap(), c);
    }

    #[test]
    fn fields_override_the_defaults() {
        let c = load(
            "version = \"2.0.1\"\nseed = \"prod\"\nformats = [\"vhd\", \"raw\"]\n\
             [esp]\nsize_mib = 100\n[disk]\nsize_mib = 4096\n\
             [initramfs]\nmodules = [\"nvme\", \"e1000e\"]\nzstd_level = 3\n",
        )
        .unwrap();
        assert_eq!(c.version, "2.0.1");
        assert_eq!(c.seed, "prod");
        assert_eq!(c.formats, [Format::Raw, Format::Vhd]);
        assert_eq!(c.esp_size, 100 * MIB);
        assert_eq!(c.data_size, 1024 * MIB, "unset fields keep their defaults");
        assert_eq!(c.disk_size(), 4096 * MIB);
        assert_eq!(c.modules, ["nvme", "e1000e"]);
        assert_eq!(c.zstd_level, 3);
    }

    #[test]
    fn init_config_is_relative_to_the_config_file() {
        let c = load("init_config = \"init.toml\"").unwrap();
        assert_eq!(c.init_config.unwrap(), Path::new("conf/init.toml"));
        let c = load("init_config = \"/etc/husk/init.toml\"").unwrap();
        assert_eq!(c.init_config.unwrap(), Path::new("/etc/husk/init.toml"));
        let c =
            Config::from_text(Path::new("image.toml"), "init_config = \"a/init.toml\"").unwrap();
        assert_eq!(c.init_config.unwrap(), Path::new("a/init.toml"));
    }

    #[test]
    fn agent_config_update_root_and_extra_files_are_relative_to_the_file() {
        let c = load(
            "agent_config = \"agent.toml\"\nupdate_root = \"/srv/repo/root.json\"\n\
             [[extra_files]]\nhost = \"motd\"\nguest = \"/etc/motd\"\n\
             [[extra_files]]\nhost = \"bin/tool\"\nguest = \"/usr/bin/tool\"\nmode = 0o755\n",
        )
        .unwrap();
        let agent = c.agent_config.unwrap();
        assert_eq!(agent.value, Path::new("conf/agent.toml"));
        // Errors about the file name the field that gave it.
        assert_eq!(
            agent.origin.error("cannot read").to_string(),
            "conf/image.toml:1:16: agent_config: cannot read"
        );
        assert_eq!(
            c.update_root.unwrap().value,
            Path::new("/srv/repo/root.json")
        );
        let files: Vec<_> = c.extra_files.iter().map(|f| f.value.clone()).collect();
        assert_eq!(
            files,
            [
                ExtraFile {
                    host: "conf/motd".into(),
                    guest: "/etc/motd".into(),
                    mode: 0o644
                },
                ExtraFile {
                    host: "conf/bin/tool".into(),
                    guest: "/usr/bin/tool".into(),
                    mode: 0o755
                },
            ]
        );
        assert_eq!(c.extra_files[1].origin.field, "extra_files[1].host");
        assert_eq!(c.extra_files[1].origin.position, Some((7, 8)));
    }

    #[test]
    fn extra_file_flags_parse_host_guest_and_mode() {
        let parse = |s: &str| s.parse::<ExtraFile>();
        assert_eq!(
            parse("motd:/etc/motd").unwrap(),
            ExtraFile {
                host: "motd".into(),
                guest: "/etc/motd".into(),
                mode: 0o644
            }
        );
        let f = parse("a:b/tool:/usr/bin/tool:0755").unwrap();
        assert_eq!((f.host.to_str().unwrap(), f.mode), ("a:b/tool", 0o755));
        assert_eq!(parse("t:/x:0o600").unwrap().mode, 0o600);
        for (bad, words) in [
            ("motd", "HOST:GUEST"),
            (":/etc/motd", "HOST:GUEST"),
            ("motd:etc/motd", "HOST:GUEST"),
            ("motd:/etc/motd:rw", "not an octal mode"),
            ("motd:/etc/motd:99999", "not an octal mode"),
            ("motd:/etc/../motd", "absolute"),
            ("motd:/", "absolute"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(words), "{bad}: {e}");
        }
    }

    fn assert_error(text: &str, position: (usize, usize), field: &str, words: &str) {
        let e = error(text);
        assert_eq!(e.file, "conf/image.toml", "{e}");
        assert_eq!(e.position, Some(position), "{e}");
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
        assert!(e.message.contains(words), "{words:?} not in {e}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!(
                "conf/image.toml:{}:{}: {field}: ",
                position.0, position.1
            )),
            "{shown}"
        );
    }

    #[test]
    fn bad_configs_name_the_line_column_and_field() {
        // Unknown fields, at the top and in a table.
        assert_error(
            "seed = \"x\"\nbogus = 1\n",
            (2, 1),
            "bogus",
            "unknown field",
        );
        assert_error("[esp]\nsize = 3\n", (2, 1), "esp.size", "unknown field");
        // Wrong types.
        assert_error(
            "[data]\nsize_mib = \"big\"\n",
            (2, 12),
            "data.size_mib",
            "invalid type",
        );
        assert_error("seed = 5\n", (1, 8), "seed", "invalid type");
        assert_error("esp = 5\n", (1, 7), "esp", "invalid type");
        // Invalid values.
        assert_error(
            "[esp]\nsize_mib = 0\n",
            (2, 12),
            "esp.size_mib",
            "between 64",
        );
        assert_error(
            "[data]\nsize_mib = 0\n",
            (2, 12),
            "data.size_mib",
            "between 8",
        );
        assert_error(
            "[disk]\nsize_mib = 100\n",
            (2, 12),
            "disk.size_mib",
            "between 1282",
        );
        assert_error("version = \"1 0\"\n", (1, 11), "version", "letters");
        assert_error("seed = \"\"\n", (1, 8), "seed", "empty");
        assert_error("formats = []\n", (1, 11), "formats", "at least one");
        assert_error(
            "formats = [\"raw\", \"raw\"]\n",
            (1, 19),
            "formats[1]",
            "twice",
        );
        assert_error(
            "[initramfs]\nzstd_level = 30\n",
            (2, 14),
            "initramfs.zstd_level",
            "between 1 and 22",
        );
        assert_error(
            "[initramfs]\nmodules = [\"ok\", \"../x\"]\n",
            (2, 18),
            "initramfs.modules[1]",
            "not a module name",
        );
        assert_error("init_config = \"\"\n", (1, 15), "init_config", "empty");
        assert_error("agent_config = \"\"\n", (1, 16), "agent_config", "empty");
        assert_error("update_root = 3\n", (1, 15), "update_root", "invalid type");
        assert_error(
            "[[extra_files]]\nhost = \"a\"\nguest = \"etc/a\"\n",
            (3, 9),
            "extra_files[0].guest",
            "absolute",
        );
        assert_error(
            "[[extra_files]]\nhost = \"a\"\nguest = \"/a\"\nmode = 0o17777\n",
            (4, 8),
            "extra_files[0].mode",
            "at most 0o7777",
        );
        assert_error(
            "[[extra_files]]\nhost = \"a\"\n",
            (1, 1),
            "extra_files[0]",
            "missing field `guest`",
        );
        assert_error(
            "[[extra_files]]\nhost = \"a\"\nguest = \"/a\"\nowner = 0\n",
            (4, 1),
            "extra_files[0].owner",
            "unknown field",
        );
    }

    #[test]
    fn unknown_formats_are_rejected() {
        assert_error(
            "formats = [\"raw\", \"vmdk\"]\n",
            (1, 19),
            "formats[1]",
            "unknown variant `vmdk`",
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = error("seed = \"x\"\n[esp]\nsize_mib = \n");
        assert_eq!(e.position.map(|p| p.0), Some(3), "{e}");
        assert!(e.to_string().starts_with("conf/image.toml:3:"), "{e}");
        let e = error("formats = [\"raw\"\n");
        assert!(e.position.is_some(), "{e}");
    }

    #[test]
    fn unreadable_files_are_named() {
        let e = Config::load(Path::new("/nonexistent/image.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/image.toml: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn toml_syntax_is_checked() {
        let e = check_toml(Path::new("init.toml"), "hostname = \"a\"\nmodules = [\n").unwrap_err();
        assert!(e.to_string().starts_with("init.toml:"), "{e}");
        check_toml(Path::new("x"), crate::initramfs::DEFAULT_INIT_CONFIG).unwrap();
    }

    #[test]
    fn line_columns_count_characters() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é = 1", 3), (1, 3), "é is one column");
    }
}
