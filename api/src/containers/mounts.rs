//! What a container mounts besides its image (`-v`, `--mount`, `--tmpfs`),
//! read as Docker reads them: a named volume (kept on the data partition
//! across container removals and reboots), an anonymous one (`-v /data`,
//! removed with its container when that is removed with `-v` or `--rm`),
//! a host path (where the security policy allows it), or a tmpfs.
//!
//! Only the request is checked here (its syntax, absolute targets, volume
//! names); whether a host path may be bound is the agent's policy.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Docker's rule for volume names (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`), at most
/// 64 characters: the name is a directory of the data partition.
pub fn check_volume_name(name: &str) -> Result<(), String> {
    let valid = (2..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "volume name `{name}`: 2 to 64 of [a-zA-Z0-9_.-], starting with a letter or digit"
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A named (or, with no source, anonymous) volume.
    Volume,
    /// A path of the host.
    Bind,
    /// A tmpfs of its own, in the container's memory.
    Tmpfs,
}

impl fmt::Display for MountKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Volume => "volume",
            Self::Bind => "bind",
            Self::Tmpfs => "tmpfs",
        })
    }
}

/// One mount of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: MountKind,
    /// The volume's name (empty: an anonymous volume the agent names) or
    /// the host path; nothing for a tmpfs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Where it appears in the container: an absolute path.
    pub target: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// A tmpfs's size limit in bytes (default: none but the container's
    /// memory limit, which its pages count against).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_size: Option<u64>,
    /// A tmpfs's mode (default 1777, as Docker's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs_mode: Option<u32>,
    /// A volume made by the agent for this container alone (`-v /path`):
    /// removed with the container when asked (`rm -v`, `--rm`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub anonymous: bool,
    /// A new volume is not filled with what the image has at the target
    /// (Docker's `nocopy`, `volume-nocopy`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_copy: bool,
}

impl Mount {
    fn new(kind: MountKind, source: &str, target: &str) -> Self {
        Self {
            kind,
            source: source.into(),
            target: target.into(),
            read_only: false,
            tmpfs_size: None,
            tmpfs_mode: None,
            anonymous: false,
            no_copy: false,
        }
    }

    /// Checks what can be checked without the machine: the target, the
    /// source for the kind, and options that belong to another kind.
    pub fn check(&self) -> Result<(), String> {
        check_target(&self.target)?;
        match self.kind {
            MountKind::Volume if self.source.is_empty() => {}
            MountKind::Volume => check_volume_name(&self.source)?,
            MountKind::Bind => {
                if !self.source.starts_with('/') || self.source.contains('\0') {
                    return Err(format!(
                        "bind source `{}` is not an absolute path",
                        self.source
                    ));
                }
                if self.source.split('/').any(|c| c == "..") {
                    return Err(format!("bind source `{}` contains `..`", self.source));
                }
            }
            MountKind::Tmpfs if !self.source.is_empty() => {
                return Err(format!(
                    "a tmpfs has no source (`{}` given for {})",
                    self.source, self.target
                ));
            }
            MountKind::Tmpfs => {}
        }
        if self.kind != MountKind::Tmpfs && (self.tmpfs_size.is_some() || self.tmpfs_mode.is_some())
        {
            return Err(format!(
                "tmpfs options on a {} mount ({})",
                self.kind, self.target
            ));
        }
        if let Some(mode) = self.tmpfs_mode
            && mode > 0o7777
        {
            return Err(format!("tmpfs mode {mode:o} is not a file mode"));
        }
        Ok(())
    }
}

impl fmt::Display for Mount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            MountKind::Tmpfs => write!(f, "tmpfs:{}", self.target)?,
            _ if self.source.is_empty() => write!(f, "{}", self.target)?,
            _ => write!(f, "{}:{}", self.source, self.target)?,
        }
        if self.read_only {
            f.write_str(":ro")?;
        }
        Ok(())
    }
}

fn check_target(target: &str) -> Result<(), String> {
    if !target.starts_with('/') || target.contains('\0') {
        return Err(format!("mount target `{target}` is not an absolute path"));
    }
    if target.split('/').any(|c| c == "..") {
        return Err(format!("mount target `{target}` contains `..`"));
    }
    if target.split('/').all(|c| c.is_empty() || c == ".") {
        return Err("a mount cannot replace the container's root (`/`)".into());
    }
    Ok(())
}

/// `-v SOURCE:TARGET[:OPTIONS]` or `-v TARGET` (an anonymous volume):
/// a source that is an absolute path is a host path, anything else a
/// volume's name. Options: `ro`, `rw`, `nocopy` (a new volume is not
/// filled from the image), and the ones Docker accepts that mean nothing
/// here (`z`, `Z`: SELinux labels; `rprivate`,
/// `private`: the propagation Husk always uses). Other propagations are
/// refused, not ignored.
pub fn parse_volume_flag(text: &str) -> Result<Mount, String> {
    let bad = |why: String| format!("invalid -v `{text}`: {why}");
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, options) = match parts.as_slice() {
        [target] => ("", *target, ""),
        [source, target] => (*source, *target, ""),
        [source, target, options] => (*source, *target, *options),
        _ => return Err(bad("expected [SOURCE:]TARGET[:OPTIONS]".into())),
    };
    let kind = if source.starts_with('/') {
        MountKind::Bind
    } else {
        MountKind::Volume
    };
    let mut mount = Mount::new(kind, source, target);
    mount.anonymous = source.is_empty();
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option {
            "ro" | "readonly" => mount.read_only = true,
            "nocopy" => mount.no_copy = true,
            "rw" | "z" | "Z" | "private" | "rprivate" => {}
            other => return Err(bad(format!("option `{other}` is not supported"))),
        }
    }
    mount.check().map_err(bad)?;
    Ok(mount)
}

/// `--mount type=volume|bind|tmpfs,source=…,target=…[,readonly]` with
/// Docker's spellings (`src`, `dst`, `destination`, `ro`,
/// `tmpfs-size`, `tmpfs-mode`, `volume-nocopy`, `bind-propagation`).
pub fn parse_mount_flag(text: &str) -> Result<Mount, String> {
    let bad = |why: String| format!("invalid --mount `{text}`: {why}");
    let mut kind = MountKind::Volume;
    let (mut source, mut target) = (String::new(), None::<String>);
    let mut mount = Mount::new(MountKind::Volume, "", "/");
    for field in text.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (field, None),
        };
        let flag = |value: Option<&str>| match value {
            None | Some("1" | "true") => Ok(true),
            Some("0" | "false") => Ok(false),
            Some(other) => Err(bad(format!("`{key}={other}` is not true or false"))),
        };
        let needs = |value: Option<&str>| {
            value
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("`{key}` needs a value")))
        };
        match key {
            "type" => {
                kind = match value {
                    Some("volume") => MountKind::Volume,
                    Some("bind") => MountKind::Bind,
                    Some("tmpfs") => MountKind::Tmpfs,
                    other => {
                        return Err(bad(format!(
                            "type `{}` is not volume, bind or tmpfs",
                            other.unwrap_or_default()
                        )));
                    }
                }
            }
            "source" | "src" => source = needs(value)?,
            "target" | "dst" | "destination" => target = Some(needs(value)?),
            "readonly" | "ro" => mount.read_only = flag(value)?,
            "tmpfs-size" => {
                let size = needs(value)?;
                mount.tmpfs_size = Some(crate::parse_bytes(&size).map_err(bad)?);
            }
            "tmpfs-mode" => {
                let mode = needs(value)?;
                let mode = u32::from_str_radix(&mode, 8)
                    .map_err(|_| bad(format!("tmpfs-mode `{mode}` is not an octal mode")))?;
                mount.tmpfs_mode = Some(mode);
            }
            "volume-nocopy" => mount.no_copy = flag(value)?,
            "bind-propagation" => match value {
                Some("rprivate" | "private") => {}
                other => {
                    return Err(bad(format!(
                        "bind-propagation `{}` is not supported (mounts are private)",
                        other.unwrap_or_default()
                    )));
                }
            },
            other => return Err(bad(format!("`{other}` is not a mount option"))),
        }
    }
    let target = target.ok_or_else(|| bad("no target".into()))?;
    mount.kind = kind;
    mount.anonymous = kind == MountKind::Volume && source.is_empty();
    mount.source = source;
    mount.target = target;
    mount.check().map_err(bad)?;
    Ok(mount)
}

/// `--tmpfs TARGET[:size=SIZE,mode=MODE]`; Docker's mount flags
/// (`noexec`, `nosuid`, …) are always on or refused.
pub fn parse_tmpfs_flag(text: &str) -> Result<Mount, String> {
    let bad = |why: String| format!("invalid --tmpfs `{text}`: {why}");
    let (target, options) = text.split_once(':').unwrap_or((text, ""));
    let mut mount = Mount::new(MountKind::Tmpfs, "", target);
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option.split_once('=') {
            Some(("size", size)) => {
                mount.tmpfs_size = Some(crate::parse_bytes(size).map_err(bad)?);
            }
            Some(("mode", mode)) => {
                mount.tmpfs_mode = Some(
                    u32::from_str_radix(mode, 8)
                        .map_err(|_| bad(format!("mode `{mode}` is not an octal mode")))?,
                );
            }
            None if matches!(option, "rw" | "noexec" | "nosuid" | "nodev") => {}
            None if option == "ro" => mount.read_only = true,
            _ => return Err(bad(format!("option `{option}` is not supported"))),
        }
    }
    mount.check().map_err(bad)?;
    Ok(mount)
}

/// `mounts` of the API and of user-data: each entry a mount or, as in a
/// compose file's short syntax, a `-v` string.
pub fn deserialize_mounts<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Mount>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Entry {
        Text(String),
        Mount(Mount),
    }
    let entries = Vec::<Entry>::deserialize(d)?;
    entries
        .into_iter()
        .map(|entry| match entry {
            Entry::Text(text) => parse_volume_flag(&text),
            Entry::Mount(mount) => mount.check().map(|()| mount),
        })
        .collect::<Result<_, _>>()
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_flags_read_as_docker_reads_them() {
        let named = parse_volume_flag("data:/var/lib/db").unwrap();
        assert_eq!(
            (named.kind, named.source.as_str(), named.target.as_str()),
            (MountKind::Volume, "data", "/var/lib/db")
        );
        assert!(!named.anonymous && !named.read_only);
        let bind = parse_volume_flag("/srv/site:/usr/share/site:ro").unwrap();
        assert_eq!(bind.kind, MountKind::Bind);
        assert!(bind.read_only);
        let anonymous = parse_volume_flag("/cache").unwrap();
        assert!(anonymous.anonymous && anonymous.source.is_empty());
        assert_eq!(parse_volume_flag("d1:/x:rw,z").unwrap().target, "/x");
        for (text, says) in [
            ("data:relative", "not an absolute path"),
            ("data:/", "root"),
            ("data:/a/../etc", "`..`"),
            ("/a/../etc:/x", "`..`"),
            ("-bad:/x", "volume name"),
            ("a:/x:rshared", "rshared"),
            ("a:/x:ro:more", "expected"),
        ] {
            let err = parse_volume_flag(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn mount_flags_take_dockers_spellings() {
        let m = parse_mount_flag("type=volume,src=db,dst=/data,readonly").unwrap();
        assert_eq!((m.source.as_str(), m.target.as_str()), ("db", "/data"));
        assert!(m.read_only);
        let t =
            parse_mount_flag("type=tmpfs,target=/run/app,tmpfs-size=64m,tmpfs-mode=700").unwrap();
        assert_eq!(t.tmpfs_size, Some(64 << 20));
        assert_eq!(t.tmpfs_mode, Some(0o700));
        let anonymous = parse_mount_flag("target=/scratch").unwrap();
        assert!(anonymous.anonymous);
        for (text, says) in [
            ("type=nfs,target=/x", "type `nfs`"),
            ("type=bind,source=/h", "no target"),
            ("type=bind,source=rel,target=/x", "absolute"),
            (
                "type=volume,source=v1,target=/x,tmpfs-size=1m",
                "tmpfs options",
            ),
            ("type=tmpfs,source=x,target=/x", "no source"),
            (
                "type=bind,source=/h,target=/x,bind-propagation=shared",
                "shared",
            ),
            ("type=volume,target=/x,colour=red", "`colour`"),
            ("type=volume,target=/x,readonly=maybe", "true or false"),
        ] {
            let err = parse_mount_flag(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn tmpfs_flags() {
        let t = parse_tmpfs_flag("/run:size=1m,mode=1777,noexec").unwrap();
        assert_eq!((t.tmpfs_size, t.tmpfs_mode), (Some(1 << 20), Some(0o1777)));
        assert!(parse_tmpfs_flag("/run:exec").is_err());
        assert!(parse_tmpfs_flag("run").is_err());
    }

    #[test]
    fn api_mounts_are_tables_or_strings_and_are_checked() {
        #[derive(Deserialize)]
        struct Doc {
            #[serde(deserialize_with = "deserialize_mounts")]
            mounts: Vec<Mount>,
        }
        let doc: Doc = serde_json::from_str(
            r#"{"mounts": ["data:/d", {"type": "tmpfs", "target": "/t", "tmpfs_size": 1024}]}"#,
        )
        .unwrap();
        assert_eq!(doc.mounts.len(), 2);
        let err = serde_json::from_str::<Doc>(
            r#"{"mounts": [{"type": "volume", "source": "../x", "target": "/d"}]}"#,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("volume name"), "{err}");
    }
}
