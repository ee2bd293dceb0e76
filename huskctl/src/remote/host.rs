//! Where a machine is: `--host`'s URLs (`tcp://HOST:PORT`,
//! `unix:///PATH`) and the `HOST:PORT` addresses that known_hosts and the
//! client use, in one canonical spelling so that a pin is found however
//! the address was typed.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;

/// `--host`'s value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostUrl {
    /// A machine's remote API.
    Tcp(Address),
    /// An agent's socket on this machine.
    Unix(PathBuf),
}

impl FromStr for HostUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(rest) = text.strip_prefix("tcp://") {
            return rest
                .parse()
                .map(HostUrl::Tcp)
                .map_err(|why| format!("`{text}`: {why}"));
        }
        if let Some(path) = text.strip_prefix("unix://") {
            return if path.len() > 1 && path.starts_with('/') {
                Ok(HostUrl::Unix(PathBuf::from(path)))
            } else {
                Err(format!(
                    "`{text}`: unix:// takes an absolute path (unix:///run/husk/api.sock)"
                ))
            };
        }
        Err(format!(
            "`{text}` is not a host URL: give tcp://HOST:PORT or unix:///PATH"
        ))
    }
}

impl fmt::Display for HostUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostUrl::Tcp(address) => write!(f, "tcp://{address}"),
            HostUrl::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// `HOST:PORT`: a name (lower-cased), an IPv4 address, or `[IPv6]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    host: Host,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Host {
    Name(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl FromStr for Address {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (v6, port) = rest
                .split_once(']')
                .ok_or_else(|| "an unclosed `[`".to_owned())?;
            let v6 = v6
                .parse()
                .map_err(|_| format!("`{v6}` is not an IPv6 address"))?;
            (Host::V6(v6), port.strip_prefix(':'))
        } else {
            let (host, port) = match text.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            };
            if host.contains(':') {
                return Err("an IPv6 address goes in brackets: [ADDRESS]:PORT".to_owned());
            }
            (parse_host(host)?, port)
        };
        let port = port.ok_or_else(|| "no port: HOST:PORT".to_owned())?;
        match port.parse::<u16>() {
            Ok(number) if number > 0 && port.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Self { host, port: number })
            }
            _ => Err(format!("`{port}` is not a port (1-65535)")),
        }
    }
}

fn parse_host(host: &str) -> Result<Host, String> {
    if !host.is_empty() && host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host
            .parse()
            .map(Host::V4)
            .map_err(|_| format!("`{host}` is not an IPv4 address"));
    }
    if is_dns_name(host) {
        Ok(Host::Name(host.to_ascii_lowercase()))
    } else {
        Err(format!("`{host}` is not a host name or address"))
    }
}

/// Dot-separated labels of letters, digits and inner dashes.
pub fn is_dns_name(name: &str) -> bool {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    name.len() <= 253 && name.split('.').all(label_ok)
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Name(name) => write!(f, "{name}:{}", self.port),
            Host::V4(ip) => write!(f, "{ip}:{}", self.port),
            Host::V6(ip) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(text: &str) -> String {
        match text.parse::<HostUrl>() {
            Ok(HostUrl::Tcp(address)) => address.to_string(),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn tcp_urls_in_their_canonical_spelling() {
        assert_eq!(tcp("tcp://192.0.2.7:7443"), "192.0.2.7:7443");
        assert_eq!(tcp("tcp://[2001:DB8:0::1]:7443"), "[2001:db8::1]:7443");
        assert_eq!(tcp("tcp://Node-1.Example:1"), "node-1.example:1");
        assert_eq!(tcp("tcp://localhost:65535"), "localhost:65535");
        assert_eq!(
            "tcp://[::1]:7443".parse::<HostUrl>().unwrap().to_string(),
            "tcp://[::1]:7443"
        );
    }

    #[test]
    fn unix_urls() {
        assert_eq!(
            "unix:///run/husk/api.sock".parse::<HostUrl>(),
            Ok(HostUrl::Unix("/run/husk/api.sock".into()))
        );
        for bad in ["unix://", "unix:///", "unix://relative/api.sock"] {
            let e = bad.parse::<HostUrl>().unwrap_err();
            assert!(e.contains(bad) && e.contains("absolute"), "{e}");
        }
    }

    #[test]
    fn bad_urls_are_named() {
        for (bad, why) in [
            ("192.0.2.7:7443", "not a host URL"),
            ("https://node:7443", "not a host URL"),
            ("", "not a host URL"),
            ("tcp://node", "no port"),
            ("tcp://node:", "not a port"),
            ("tcp://node:0", "not a port"),
            ("tcp://node:65536", "not a port"),
            ("tcp://node:+1", "not a port"),
            ("tcp://node:7443/", "not a port"),
            ("tcp://2001:db8::1:7443", "brackets"),
            ("tcp://[2001:db8::1]", "no port"),
            ("tcp://[2001:db8::1:7443", "unclosed"),
            ("tcp://[node]:7443", "not an IPv6 address"),
            ("tcp://192.0.2.300:7443", "not an IPv4 address"),
            ("tcp://:7443", "not a host name"),
            ("tcp://no_underscore:7443", "not a host name"),
            ("tcp://-dash.example:7443", "not a host name"),
            ("tcp://a..b:7443", "not a host name"),
            ("tcp://user@node:7443", "not a host name"),
        ] {
            let e = bad.parse::<HostUrl>().unwrap_err();
            assert!(
                e.contains(&format!("`{bad}`")) && e.contains(why),
                "{bad}: {e}"
            );
        }
    }
}
