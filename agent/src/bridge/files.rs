//! The files a container's own network needs, written into its directory
//! before each start and bound over its `/etc/resolv.conf`, `/etc/hosts`
//! and `/etc/hostname` (as Docker does): the host's name servers (or
//! `--dns`), its own name and address, `--add-host` lines.

use std::net::{IpAddr, Ipv4Addr};

use husk_api::containers::parse_extra_host;

/// The container's resolv.conf: `dns` when the user gave some, else the
/// host's, without loopback servers (the container's loopback is its
/// own: a server there is not the host's).
pub fn resolv_conf(host: &str, dns: &[IpAddr]) -> String {
    let mut out = String::new();
    let mut servers = 0;
    if dns.is_empty() {
        for ip in name_servers(host).iter().filter(|ip| !ip.is_loopback()) {
            out.push_str(&format!("nameserver {ip}\n"));
            servers += 1;
        }
        for line in host.lines() {
            let mut words = line.split_whitespace();
            if let (Some("search" | "domain" | "options"), Some(_)) = (words.next(), words.next()) {
                out.push_str(line.trim());
                out.push('\n');
            }
        }
    } else {
        for ip in dns {
            out.push_str(&format!("nameserver {ip}\n"));
            servers += 1;
        }
    }
    if servers == 0 {
        out.insert_str(
            0,
            "# The host has no name server a container can reach (none yet, or only loopback ones).\n",
        );
    }
    out
}

/// The container's resolv.conf on a user network: the network's DNS
/// server (on its gateway) answers, the host's search domains and
/// options are kept.
pub fn resolv_conf_user(host: &str, gateway: Ipv4Addr) -> String {
    let mut out = format!("nameserver {gateway}\n");
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if let (Some("search" | "domain"), Some(_)) = (words.next(), words.next()) {
            out.push_str(line.trim());
            out.push('\n');
        }
    }
    // As Docker's: a container's name (no dot) is asked as it is first,
    // not after every search domain has gone to the upstream servers.
    out.push_str("options ndots:0\n");
    out
}

/// The addresses of a resolv.conf's `nameserver` lines (those that are
/// addresses), in order.
pub fn name_servers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(ip)) => ip.parse().ok(),
                _ => None,
            }
        })
        .collect()
}

/// The domains of a resolv.conf's `search` (or `domain`) line.
pub fn search_domains(resolv_conf: &str) -> Vec<String> {
    let mut domains = Vec::new();
    for line in resolv_conf.lines() {
        let mut words = line.split_whitespace();
        if let Some("search" | "domain") = words.next() {
            domains = words
                .map(|d| d.trim_end_matches('.').to_owned())
                .filter(|d| !d.is_empty())
                .collect();
        }
    }
    domains
}

/// The container's /etc/hosts.
pub fn hosts(
    hostname: &str,
    address: Option<Ipv4Addr>,
    address_v6: Option<std::net::Ipv6Addr>,
    extra: &[String],
) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    if let Some(ip) = address {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    if let Some(ip) = address_v6 {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    for entry in extra {
        // Checked when the container was created; a bad one is skipped.
        if let Ok((name, ip)) = parse_extra_host(entry) {
            out.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_out_loopback_servers_and_keeps_search() {
        let host = "nameserver 127.0.0.53\nnameserver 10.0.2.3\nsearch example.internal\n# x\n";
        let out = resolv_conf(host, &[]);
        assert_eq!(out, "nameserver 10.0.2.3\nsearch example.internal\n");
        let out = resolv_conf("nameserver ::1\n", &[]);
        assert!(out.starts_with("# The host has no name server"), "{out}");
    }

    #[test]
    fn dns_flags_win() {
        let out = resolv_conf("nameserver 10.0.2.3\n", &["9.9.9.9".parse().unwrap()]);
        assert_eq!(out, "nameserver 9.9.9.9\n");
    }

    #[test]
    fn hosts_name_the_container_and_the_extra_hosts() {
        let out = hosts(
            "web",
            Some(Ipv4Addr::new(172, 17, 0, 2)),
            Some("fd00::ac11:2".parse().unwrap()),
            &["db:10.0.0.5".into(), "v6:[fd00::1]".into()],
        );
        assert!(out.contains("127.0.0.1\tlocalhost\n"));
        assert!(out.contains("172.17.0.2\tweb\n"));
        assert!(out.contains("fd00::ac11:2\tweb\n"));
        assert!(out.contains("10.0.0.5\tdb\n"));
        assert!(out.contains("fd00::1\tv6\n"));
    }
}
