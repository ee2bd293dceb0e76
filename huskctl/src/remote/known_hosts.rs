//! `<config>/known_hosts`: the machines' certificates pinned on first
//! contact, a `HOST:PORT sha256:HEX` line each; `#` starts a comment.
//! Rewritten whole (comments kept) when a pin is added.

use std::path::Path;

use husk_api::tls::Fingerprint;

use super::host::Address;

#[derive(Debug, Default)]
pub struct KnownHosts {
    lines: Vec<Line>,
}

#[derive(Debug)]
enum Line {
    /// A comment or a blank line, kept as it was.
    Other(String),
    Pin(Address, Fingerprint),
}

impl KnownHosts {
    /// `what` names the file in errors.
    pub fn parse(text: &str, what: &str) -> Result<Self, String> {
        let mut lines = Vec::new();
        let mut seen: Vec<(Address, usize)> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                lines.push(Line::Other(line.to_owned()));
                continue;
            }
            let bad = |why: String| format!("{what}:{number}: {why}");
            let fields: Vec<&str> = trimmed.split_whitespace().collect();
            let [address, fingerprint] = fields[..] else {
                return Err(bad(format!(
                    "expected `HOST:PORT sha256:HEX`, not `{trimmed}`"
                )));
            };
            let address: Address = address.parse().map_err(bad)?;
            let fingerprint = fingerprint
                .parse()
                .map_err(|e: husk_api::tls::TlsError| bad(e.to_string()))?;
            // Two pins for one machine: which is meant is not ours to guess.
            if let Some((_, first)) = seen.iter().find(|(a, _)| *a == address) {
                return Err(bad(format!("{address} is pinned on line {first} already")));
            }
            seen.push((address.clone(), number));
            lines.push(Line::Pin(address, fingerprint));
        }
        Ok(Self { lines })
    }

    /// The file; none yet is an empty list.
    pub fn load(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    pub fn get(&self, address: &Address) -> Option<Fingerprint> {
        self.lines.iter().find_map(|line| match line {
            Line::Pin(a, fingerprint) if a == address => Some(*fingerprint),
            _ => None,
        })
    }

    /// Pins `address` to `fingerprint`, in place of its line if it has one.
    pub fn set(&mut self, address: &Address, fingerprint: Fingerprint) {
        let existing = self.lines.iter_mut().find_map(|line| match line {
            Line::Pin(a, pinned) if a == address => Some(pinned),
            _ => None,
        });
        match existing {
            Some(pinned) => *pinned = fingerprint,
            None => self.lines.push(Line::Pin(address.clone(), fingerprint)),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Other(text) => out.push_str(text),
                Line::Pin(address, fingerprint) => {
                    out.push_str(&format!("{address} {fingerprint}"))
                }
            }
            out.push('\n');
        }
        out
    }
}

/// Adds (or replaces) `address`'s pin in the file at `path`.
pub fn pin(path: &Path, address: &Address, fingerprint: Fingerprint) -> Result<(), String> {
    let mut hosts = KnownHosts::load(path)?;
    hosts.set(address, fingerprint);
    if let Some(dir) = path.parent() {
        super::ensure_dir(dir)?;
    }
    super::write_file(path, hosts.render().as_bytes(), 0o644, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn address(text: &str) -> Address {
        text.parse().unwrap()
    }

    #[test]
    fn pins_are_read_with_comments_around_them() {
        let text = format!(
            "# machines\n\n192.0.2.7:7443 {A}\n  [2001:DB8::1]:7443   {}  \nnode.example:7443 {B}\n",
            B.to_uppercase().replace("SHA256:", "")
        );
        let hosts = KnownHosts::parse(&text, "known_hosts").unwrap();
        assert_eq!(
            hosts.get(&address("192.0.2.7:7443")),
            Some(A.parse().unwrap())
        );
        assert_eq!(
            hosts.get(&address("[2001:db8::1]:7443")),
            Some(B.parse().unwrap())
        );
        assert_eq!(
            hosts.get(&address("Node.Example:7443")),
            Some(B.parse().unwrap())
        );
        assert_eq!(hosts.get(&address("192.0.2.7:7444")), None);
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        for (text, why) in [
            (
                "# ok\n192.0.2.7:7443\n".to_owned(),
                "known_hosts:2: expected",
            ),
            (
                format!("192.0.2.7:7443 {A} extra\n"),
                "known_hosts:1: expected",
            ),
            (format!("\n\nnode {A}\n"), "known_hosts:3: no port"),
            (
                "node:1 sha256:abc\n".to_owned(),
                "known_hosts:1: `sha256:abc` is not",
            ),
            (
                format!("node:1 {A}\n# again\nNODE:1 {B}\n"),
                "known_hosts:3: node:1 is pinned on line 1 already",
            ),
        ] {
            let e = KnownHosts::parse(&text, "known_hosts").unwrap_err();
            assert!(e.starts_with(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn pinning_appends_or_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("husk/known_hosts");
        let node = address("node.example:7443");
        let other = address("[::1]:7443");
        pin(&path, &node, A.parse().unwrap()).unwrap();
        std::fs::write(
            &path,
            format!("# kept\n{}", std::fs::read_to_string(&path).unwrap()),
        )
        .unwrap();
        pin(&path, &other, A.parse().unwrap()).unwrap();
        pin(&path, &node, B.parse().unwrap()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("# kept\nnode.example:7443 {B}\n[::1]:7443 {A}\n")
        );
        // Nothing left behind beside it.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }
}
