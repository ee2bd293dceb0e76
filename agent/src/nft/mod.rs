//! The host's firewall for containers: the agent's own nftables table,
//! `table inet husk`, programmed over nfnetlink (NETLINK_NETFILTER) by
//! the agent itself — no `nft` executable, no libnftnl. The table is a
//! pure function of a [`FirewallState`]: published ports (DNAT),
//! masquerading out of each bridge, isolation between bridges and from
//! the host, and the cloud metadata service kept from containers that
//! may not reach it. Each call replaces the whole table in one
//! transaction, so it never holds a rule twice and a failure leaves it
//! as it was; the drop counters are carried over into the new table.
//!
//! Everything happens in the calling thread's network namespace: each
//! call opens its own socket there.
//!
//! What the ruleset needs from the kernel: nf_tables with the inet
//! family, nft_chain_nat (the nat chains), nft_nat (dnat), nft_masq,
//! nft_ct, nft_fib_inet (with nft_fib_ipv4/ipv6) and nf_conntrack/nf_nat;
//! meta, payload, cmp, bitwise, immediate and counter are nf_tables'
//! own.

mod batch;
mod expr;
mod ruleset;
mod sys;
mod uapi;
mod wire;

use std::io;
use std::net::IpAddr;

/// Everything the agent's table holds, as data: the table is a pure function of this.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FirewallState {
    pub bridges: Vec<BridgeRules>,
    pub ports: Vec<PortRule>,
    /// Container addresses allowed to reach the cloud metadata service.
    pub metadata_allowed: Vec<IpAddr>,
    /// The machine's own inbound firewall; None: the machine's own
    /// traffic is left alone (only containers' is filtered).
    pub host: Option<HostFirewall>,
}

/// What the machine itself accepts from its networks: replies to what it
/// asked (conntrack's established and related, which covers DNS and NTP
/// answers), its DHCP leases, ICMP (path MTU, neighbour discovery), and
/// `inbound`; everything else is counted and dropped. Published ports
/// are not here: their DNAT sends them to `forward`, not `input`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFirewall {
    /// Ports the machine accepts connections on (the remote API when it
    /// listens; ports host-network containers serve).
    pub inbound: Vec<(Protocol, u16)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BridgeRules {
    /// e.g. "husk0": a valid interface name (at most 15 bytes) that
    /// starts with [`BRIDGE_PREFIX`], which the isolation rules match.
    pub interface: String,
    pub subnet_v4: (std::net::Ipv4Addr, u8),
    pub subnet_v6: Option<(std::net::Ipv6Addr, u8)>,
    /// No way out: no masquerade, nothing forwarded to other interfaces.
    pub internal: bool,
    /// Where the network's DNS server listens (its gateway addresses, on
    /// ports the kernel picked): its containers' queries to the gateway's
    /// port 53 are redirected there, so that the server never needs port
    /// 53 of the host, which a host-network DNS server may hold. Empty:
    /// no DNS server (the default bridge), and no DNS on the gateway.
    pub dns: Vec<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PortRule {
    pub protocol: Protocol,
    /// None (or 0.0.0.0, ::): every local address of the host.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    /// v4 or v6; the rule is for that family (and `host_ip` of it too).
    pub container_ip: IpAddr,
    pub container_port: u16,
    /// The bridge interface the container is on (one of the bridges).
    pub bridge: String,
    /// Shown in errors and as the rule's comment, e.g. "web 8080->80/tcp"
    /// (at most 128 bytes, nft's limit).
    pub comment: String,
}

/// The name of the agent's table (family inet).
pub const TABLE: &str = "husk";

/// What every container bridge's name starts with: the rules for all of
/// them match `"husk*"`.
pub const BRIDGE_PREFIX: &str = "husk";

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The state cannot be a table (checked before anything is sent).
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// A call on the netlink socket failed.
    #[error("{op} the NETLINK_NETFILTER socket: {source}")]
    Socket { op: &'static str, source: io::Error },
    /// The kernel refused `object` (a table, chain or rule of the batch,
    /// the batch itself, or a listing); a refused batch changed nothing.
    #[error("{object}: {}", describe_errno(source))]
    Kernel { object: String, source: io::Error },
    /// The kernel's answer does not parse.
    #[error("a malformed nfnetlink answer: {0}")]
    Malformed(String),
}

/// Replaces the agent's table with `state`, atomically, in one nfnetlink batch:
/// NEWTABLE (create if missing), DELTABLE, NEWTABLE, then the chains and rules —
/// so an agent restart or a second call never duplicates a rule, and a failure leaves the old table as it was.
///
/// The counters go on: each counted rule starts where the old table's
/// rule of the same chain, comment and place among those stood.
pub fn apply(state: &FirewallState) -> Result<(), NftError> {
    let mut ruleset = ruleset::build(state)?;
    // The table is rewritten whole on every change — every container's
    // start and stop — so without this every drop counter would start
    // again at 0 each time. What the old rules count between this dump
    // and the commit is lost: a few packets at most, and acceptable.
    ruleset.seed_counters(&current_counts());
    ruleset::replace(&ruleset).commit()
}

/// The counters of the table as it is now, for [`apply`] to carry over.
/// None when the table is absent or cannot be listed: its counters then
/// start again at 0, which is no reason to keep the table from changing.
fn current_counts() -> ruleset::Counts {
    let mut keys = ruleset::CounterKeys::default();
    let mut counts = ruleset::Counts::new();
    let dumped = batch::dump_rules(TABLE, |rule| {
        let rule = Dumped::parse(rule).map_err(NftError::Malformed)?;
        if let Some(count) = rule.counter {
            // (`build` writes no comment when it is empty: the same key)
            let comment = rule.comment.unwrap_or_default();
            counts.insert(keys.next(&rule.chain, &comment), count);
        }
        Ok(())
    });
    match dumped {
        Ok(()) => counts,
        Err(e) => {
            log::debug!("nft: table inet {TABLE}'s counters start at 0: {e}");
            ruleset::Counts::new()
        }
    }
}

/// Removes the agent's table (nothing if it is absent).
pub fn remove() -> Result<(), NftError> {
    ruleset::remove().commit()
}

/// The packet counters of the table's counted drop rules, by rule comment (read back with NFT_MSG_GETRULE dumps), for tests and `GET /v1/system` later.
///
/// Rules that share a comment ("metadata" of each bridge, the two
/// "isolation" rules) are summed; the order is the table's. Empty when
/// the table does not exist.
pub fn drop_counters() -> Result<Vec<(String, u64)>, NftError> {
    let mut counters: Vec<(String, u64)> = Vec::new();
    batch::dump_rules(TABLE, |rule| {
        let rule = Dumped::parse(rule).map_err(NftError::Malformed)?;
        if let (Some(comment), Some((packets, _)), true) = (rule.comment, rule.counter, rule.drops)
        {
            match counters.iter_mut().find(|(c, _)| *c == comment) {
                Some((_, sum)) => *sum += packets,
                None => counters.push((comment, packets)),
            }
        }
        Ok(())
    })?;
    Ok(counters)
}

/// What a dumped rule says of its counter.
struct Dumped {
    chain: String,
    comment: Option<String>,
    /// The (first) counter's packets and bytes.
    counter: Option<(u64, u64)>,
    drops: bool,
}

impl Dumped {
    fn parse(rule: &[u8]) -> Result<Self, String> {
        use uapi::*;
        let chain = wire::find(rule, NFTA_RULE_CHAIN)?.map(wire::string);
        let comment = wire::find(rule, NFTA_RULE_USERDATA)?.and_then(ruleset::comment_of);
        let (mut counter, mut drops) = (None, false);
        let exprs = wire::find(rule, NFTA_RULE_EXPRESSIONS)?.unwrap_or_default();
        for elem in wire::attrs(exprs) {
            let (_, elem) = elem?;
            let name = wire::find(elem, NFTA_EXPR_NAME)?.map(wire::string);
            let data = wire::find(elem, NFTA_EXPR_DATA)?.unwrap_or_default();
            match name.as_deref() {
                Some("counter") if counter.is_none() => {
                    let value = |kind| wire::find(data, kind)?.map_or(Ok(0), wire::be_uint);
                    counter = Some((value(NFTA_COUNTER_PACKETS)?, value(NFTA_COUNTER_BYTES)?));
                }
                Some("immediate") => {
                    let verdict = wire::find(data, NFTA_IMMEDIATE_DATA)?
                        .map(|d| wire::find(d, NFTA_DATA_VERDICT))
                        .transpose()?
                        .flatten();
                    if let Some(verdict) = verdict {
                        let code = wire::find(verdict, NFTA_VERDICT_CODE)?;
                        drops = code.map(wire::be_uint).transpose()? == Some(NF_DROP.into());
                    }
                }
                _ => {}
            }
        }
        Ok(Self {
            chain: chain.ok_or("a dumped rule without its chain")?,
            comment,
            counter,
            drops,
        })
    }
}

/// `File exists (EEXIST)`: the kernel's errno as text and by name.
fn describe_errno(error: &io::Error) -> String {
    let Some(code) = error.raw_os_error() else {
        return error.to_string();
    };
    let text = error.to_string();
    let text = text
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&text);
    match errno_name(code) {
        Some(name) => format!("{text} ({name})"),
        None => format!("{text} (errno {code})"),
    }
}

/// The names of the errnos nf_tables answers with.
fn errno_name(code: i32) -> Option<&'static str> {
    Some(match code {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::E2BIG => "E2BIG",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ELOOP => "ELOOP",
        libc::EMLINK => "EMLINK",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::ENOBUFS => "ENOBUFS",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_read_as_text_and_name() {
        let e = |code| describe_errno(&io::Error::from_raw_os_error(code));
        assert_eq!(e(libc::EEXIST), "File exists (EEXIST)");
        assert_eq!(e(libc::EOPNOTSUPP), "Operation not supported (EOPNOTSUPP)");
        assert!(e(4095).ends_with("(errno 4095)"));
        let error = NftError::Kernel {
            object: "rule 7 of chain prerouting (x)".into(),
            source: io::Error::from_raw_os_error(libc::EEXIST),
        };
        assert_eq!(
            error.to_string(),
            "rule 7 of chain prerouting (x): File exists (EEXIST)"
        );
        // The cause is kept.
        let source = std::error::Error::source(&error).unwrap();
        assert_eq!(source.to_string(), "File exists (os error 17)");
    }
}
