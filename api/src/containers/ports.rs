//! Published ports (`-p [IP:][HOSTPORT:]CONTAINERPORT[/tcp|/udp]`), as
//! Docker reads them: ranges on either side (`8000-8009:80-89`), an
//! IPv6 host address in brackets (`[::1]:8080:80`), and no host port
//! (`-p 80`) for one the agent picks. A range is expanded to one mapping
//! per port, which is what the API carries.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The most ports one `-p` may publish: each is a rule, and a typo such
/// as `1-65535` should not make 65535 of them.
pub const MAX_RANGE: u32 = 1024;

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PortProtocol {
    #[default]
    Tcp,
    Udp,
}

impl fmt::Display for PortProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        })
    }
}

/// One published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortMapping {
    /// The host address it is reachable on; None: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    /// 0: the agent picks a free one when the container starts.
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default)]
    pub protocol: PortProtocol,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(
            f,
            "{}->{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

/// Why a `-p` value cannot be read; the message names the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid published port {spec:?}: {reason}")]
pub struct PortSpecError {
    pub spec: String,
    pub reason: String,
}

/// `ports` of the API and of user-data: each entry a mapping or, as in a
/// compose file, a `-p` string (`"8080:80"`, `"53:53/udp"`), which may
/// stand for several (a range).
pub fn deserialize_ports<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<PortMapping>, D::Error> {
    struct Entries;
    impl<'de> serde::de::Visitor<'de> for Entries {
        type Value = Vec<PortMapping>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of published ports (\"8080:80\", \"53:53/udp\" or tables)")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = seq.next_element::<Entry>()? {
                out.extend(entry.0);
            }
            Ok(out)
        }
    }
    struct Entry(Vec<PortMapping>);
    impl<'de> Deserialize<'de> for Entry {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct One;
            impl<'de> serde::de::Visitor<'de> for One {
                type Value = Entry;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a published port: \"[IP:]HOSTPORT:PORT[/udp]\" or a table")
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Entry, E> {
                    parse_publish(v).map(Entry).map_err(E::custom)
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    map: A,
                ) -> Result<Entry, A::Error> {
                    let m = PortMapping::deserialize(
                        serde::de::value::MapAccessDeserializer::new(map),
                    )?;
                    Ok(Entry(vec![m]))
                }
            }
            d.deserialize_any(One)
        }
    }
    d.deserialize_seq(Entries)
}

/// Reads one `-p` value into its mappings.
pub fn parse_publish(spec: &str) -> Result<Vec<PortMapping>, PortSpecError> {
    let fail = |reason: String| PortSpecError {
        spec: spec.to_string(),
        reason,
    };
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((rest, proto)) => (
            rest,
            match proto {
                "tcp" => PortProtocol::Tcp,
                "udp" => PortProtocol::Udp,
                other => return Err(fail(format!("protocol {other:?}: tcp or udp"))),
            },
        ),
        None => (spec, PortProtocol::Tcp),
    };
    let (host_ip, ports) = split_host_ip(rest).map_err(&fail)?;
    let (host, container) = match ports.rsplit_once(':') {
        Some((host, container)) => (Some(host), container),
        None => (None, ports),
    };
    let container = range(container).map_err(|r| fail(format!("container port {r}")))?;
    let host = match host {
        // `IP::80`: an address and no host port, as Docker allows.
        None | Some("") => None,
        Some(host) => Some(range(host).map_err(|r| fail(format!("host port {r}")))?),
    };
    let count = u32::from(container.1 - container.0) + 1;
    if count > MAX_RANGE {
        return Err(fail(format!("{count} ports; at most {MAX_RANGE} at once")));
    }
    let host_start = match host {
        None => None,
        Some((start, end)) => {
            let host_count = u32::from(end - start) + 1;
            if host_count != count {
                return Err(fail(format!(
                    "the host range has {host_count} ports and the container range {count}"
                )));
            }
            Some(start)
        }
    };
    Ok((0..count as u16)
        .map(|i| PortMapping {
            host_ip,
            host_port: host_start.map_or(0, |s| s + i),
            container_port: container.0 + i,
            protocol,
        })
        .collect())
}

/// `IP:rest`, `[IPv6]:rest` or `rest` (ports only).
fn split_host_ip(s: &str) -> Result<(Option<IpAddr>, &str), String> {
    if let Some(v6) = s.strip_prefix('[') {
        let (ip, rest) = v6
            .split_once("]:")
            .ok_or_else(|| "an IPv6 address in brackets must be followed by `:`".to_string())?;
        let ip = std::net::Ipv6Addr::from_str(ip).map_err(|_| format!("host address {ip:?}"))?;
        return Ok((Some(IpAddr::V6(ip)), rest));
    }
    let colons = s.matches(':').count();
    if colons < 2 {
        return Ok((None, s));
    }
    let (ip, rest) = s.split_once(':').unwrap_or((s, ""));
    let ip = IpAddr::from_str(ip).map_err(|_| {
        format!("host address {ip:?} (an IPv6 address goes in brackets: [::1]:8080:80)")
    })?;
    Ok((Some(ip), rest))
}

/// `N` or `N-M`: no port 0 (`-p 80` is how one asks for any host
/// port), no range that runs backwards.
fn range(s: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{p:?}: a port is 1 to 65535")),
        Ok(n) => Ok(n),
    };
    match s.split_once('-') {
        None => port(s).map(|p| (p, p)),
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if a > b {
                return Err(format!("{s:?}: the range ends before it starts"));
            }
            Ok((a, b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(spec: &str) -> PortMapping {
        let v = parse_publish(spec).unwrap();
        assert_eq!(v.len(), 1, "{spec}");
        v[0]
    }

    #[test]
    fn reads_docker_forms() {
        let m = one("8080:80");
        assert_eq!((m.host_ip, m.host_port, m.container_port), (None, 8080, 80));
        assert_eq!(m.protocol, PortProtocol::Tcp);
        let m = one("127.0.0.1:53:53/udp");
        assert_eq!(m.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(m.protocol, PortProtocol::Udp);
        let m = one("[::1]:8443:443");
        assert_eq!(m.host_ip, Some("::1".parse().unwrap()));
        assert_eq!(m.host_port, 8443);
        let m = one("80");
        assert_eq!((m.host_port, m.container_port), (0, 80));
        let m = one("10.0.0.1::80");
        assert_eq!((m.host_port, m.container_port), (0, 80));
        assert_eq!(m.to_string(), "10.0.0.1:0->80/tcp");
    }

    #[test]
    fn lists_take_strings_and_tables() {
        #[derive(Deserialize)]
        struct Opts {
            #[serde(deserialize_with = "deserialize_ports")]
            ports: Vec<PortMapping>,
        }
        let o: Opts = toml::from_str(
            "ports = [\"8080:80\", \"9000-9001:90-91/udp\", { host_port = 1, container_port = 2 }]",
        )
        .unwrap();
        assert_eq!(o.ports.len(), 4);
        assert_eq!(o.ports[2].protocol, PortProtocol::Udp);
        let o: Opts = serde_json::from_str(
            r#"{"ports":[{"host_port":8080,"container_port":80,"protocol":"tcp"}]}"#,
        )
        .unwrap();
        assert_eq!(o.ports[0].host_port, 8080);
        let err = toml::from_str::<Opts>("ports = [\"8080:80/sctp\"]")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("tcp or udp"), "{err}");
    }

    #[test]
    fn expands_ranges_one_to_one() {
        let v = parse_publish("8000-8002:80-82/udp").unwrap();
        let pairs: Vec<_> = v.iter().map(|m| (m.host_port, m.container_port)).collect();
        assert_eq!(pairs, [(8000, 80), (8001, 81), (8002, 82)]);
    }

    #[test]
    fn refuses_what_it_cannot_read_by_name() {
        for (spec, part) in [
            ("8080:80/sctp", "protocol"),
            ("0:80", "host port"),
            ("8080:70000", "container port"),
            ("8080:", "container port"),
            ("9-8:80-81", "ends before it starts"),
            ("8000-8002:80-81", "host range has 3 ports"),
            ("::1:8080:80", "brackets"),
            ("[::1]8080:80", "followed by"),
            ("1-2000:1-2000", "at most 1024"),
            ("nope:1:2", "host address"),
        ] {
            let err = parse_publish(spec).unwrap_err().to_string();
            assert!(err.contains(part), "{spec}: {err}");
            assert!(err.contains(spec), "{spec}: {err}");
        }
    }
}
