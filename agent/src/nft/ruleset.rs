//! The agent's table as data: [`FirewallState`] checked, then turned into
//! chains and rules, and those into the batch that replaces the table.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::batch::Batch;
use super::expr::{self, AnonSet, Expr, Family, IfName, RuleBuilder, Verdict};
use super::uapi::*;
use super::{BRIDGE_PREFIX, FirewallState, HostFirewall, NftError, Protocol, TABLE};

/// The cloud metadata service, as EC2 (and most clouds) place it.
const METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// A base chain's hook: `type KIND hook HOOK priority PRIORITY; policy accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    pub kind: &'static str,
    pub hook: u32,
    pub priority: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: &'static str,
    /// None: a regular chain, reached by a jump.
    pub hook: Option<Hook>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub chain: &'static str,
    pub exprs: Vec<Expr>,
    /// nft's text for the rule (without its comment).
    pub text: String,
    pub comment: String,
    /// The anonymous set the rule looks up, if any.
    pub set: Option<AnonSet>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub chains: Vec<Chain>,
    pub rules: Vec<Rule>,
}

/// Where a counted rule stands, to carry its counter over to the next
/// table: its chain, its comment, and how many counted rules of that
/// chain and comment come before it.
pub type CounterKey = (String, String, usize);

/// Counts, by [`CounterKey`]: `(packets, bytes)`.
pub type Counts = HashMap<CounterKey, (u64, u64)>;

/// Numbers counted rules as they come, in the table's order: the old
/// table's (dumped) and the new one's the same way, so a rule that is
/// in both gets the same key.
#[derive(Debug, Default)]
pub struct CounterKeys(HashMap<(String, String), usize>);

impl CounterKeys {
    pub fn next(&mut self, chain: &str, comment: &str) -> CounterKey {
        let n = self
            .0
            .entry((chain.to_string(), comment.to_string()))
            .or_default();
        *n += 1;
        (chain.to_string(), comment.to_string(), *n - 1)
    }
}

impl Ruleset {
    /// Starts each rule's counter where the old table's counter of the
    /// same key stands (`old`), at 0 if it has none: the table is
    /// rewritten whole on every change (each container's start and stop),
    /// and "dropped and counted" must not forget what it counted. A rule
    /// has one counter at most.
    pub fn seed_counters(&mut self, old: &Counts) {
        let mut keys = CounterKeys::default();
        for rule in &mut self.rules {
            let counter = rule.exprs.iter_mut().find_map(|e| match e {
                Expr::Counter { packets, bytes } => Some((packets, bytes)),
                _ => None,
            });
            if let Some((packets, bytes)) = counter {
                let key = keys.next(rule.chain, &rule.comment);
                (*packets, *bytes) = old.get(&key).copied().unwrap_or_default();
            }
        }
    }
}

const fn base(name: &'static str, kind: &'static str, hook: u32, priority: i32) -> Chain {
    Chain {
        name,
        hook: Some(Hook {
            kind,
            hook,
            priority,
        }),
    }
}

/// The chains, in the order they are created (and nft lists them).
const CHAINS: [Chain; 6] = [
    base("prerouting", "nat", NF_INET_PRE_ROUTING, -100),
    base("output", "nat", NF_INET_LOCAL_OUT, -100),
    Chain {
        name: "ports",
        hook: None,
    },
    base("postrouting", "nat", NF_INET_POST_ROUTING, 100),
    base("forward", "filter", NF_INET_FORWARD, 0),
    base("input", "filter", NF_INET_LOCAL_IN, 0),
];

/// Every container bridge, as nft's wildcard: `"husk*"`.
const ANY_BRIDGE: IfName<'static> = IfName::Prefix(BRIDGE_PREFIX);

/// The table for `state`, checked first.
pub fn build(state: &FirewallState) -> Result<Ruleset, NftError> {
    validate(state)?;
    let mut rules = Vec::new();
    let mut add = |chain: &'static str, comment: &str, rule: RuleBuilder| {
        let set = rule.set().cloned();
        let (exprs, text) = rule.finish();
        rules.push(Rule {
            chain,
            exprs,
            text,
            comment: comment.to_string(),
            set,
        });
    };
    let new = RuleBuilder::new;
    let v4_net = |(addr, prefix): (Ipv4Addr, u8)| (IpAddr::V4(addr), prefix);
    let v6_net = |(addr, prefix): (Ipv6Addr, u8)| (IpAddr::V6(addr), prefix);

    // A user network's DNS: the gateway's port 53, from its own bridge
    // only, to where the network's server listens. Before the published
    // ports: a host port 53 published by a container must not take it.
    for bridge in &state.bridges {
        let name = bridge.interface.as_str();
        for server in &bridge.dns {
            for proto in [IPPROTO_UDP, IPPROTO_TCP] {
                add(
                    "prerouting",
                    &format!("dns {name}"),
                    new()
                        .iifname(false, IfName::Exact(name))
                        .daddr(false, (server.ip(), full_prefix(server.ip())))
                        .l4proto(proto)
                        .dport("th", 53)
                        .dnat(server.ip(), server.port()),
                );
            }
        }
    }

    // Published ports: traffic for one of the host's addresses, from
    // outside (prerouting) or from the host itself (output).
    for chain in ["prerouting", "output"] {
        add(
            chain,
            "published ports",
            new().fib_daddr_local().verdict(Verdict::Jump("ports")),
        );
    }
    for port in &state.ports {
        let family = Family::of(port.container_ip);
        let mut rule = new().nfproto(family);
        if let Some(host_ip) = port.host_ip.filter(|ip| !ip.is_unspecified()) {
            rule = rule.daddr(false, (host_ip, full_prefix(host_ip)));
        }
        let proto = match port.protocol {
            Protocol::Tcp => IPPROTO_TCP,
            Protocol::Udp => IPPROTO_UDP,
        };
        let rule = rule
            .l4proto(proto)
            .dport("th", port.host_port)
            .dnat(port.container_ip, port.container_port);
        add("ports", &port.comment, rule);
    }

    // Out to the world as the host; back to a bridge as the host when
    // the packet would otherwise not come back through it.
    for bridge in &state.bridges {
        let name = bridge.interface.as_str();
        let mut nets = vec![v4_net(bridge.subnet_v4)];
        nets.extend(bridge.subnet_v6.map(v6_net));
        if !bridge.internal {
            for &net in &nets {
                add(
                    "postrouting",
                    &format!("outbound {name}"),
                    new()
                        .saddr(false, net)
                        .oifname(true, IfName::Exact(name))
                        .masquerade(),
                );
            }
        }
        // Hairpin: a container reaching a published port of its own bridge.
        for &net in &nets {
            add(
                "postrouting",
                &format!("hairpin {name}"),
                new()
                    .oifname(false, IfName::Exact(name))
                    .ct_status_dnat()
                    .saddr(false, net)
                    .masquerade(),
            );
        }
        // The host's localhost to a published port (route_localnet).
        add(
            "postrouting",
            &format!("localhost {name}"),
            new()
                .oifname(false, IfName::Exact(name))
                .saddr(false, (IpAddr::V4(Ipv4Addr::LOCALHOST), 8))
                .masquerade(),
        );
    }

    // forward: replies, then what may start a connection.
    add(
        "forward",
        "established",
        new()
            .ct_state(
                NF_CT_STATE_ESTABLISHED_BIT | NF_CT_STATE_RELATED_BIT,
                "established,related",
            )
            .verdict(Verdict::Accept),
    );
    add(
        "forward",
        "invalid",
        new()
            .ct_state(NF_CT_STATE_INVALID_BIT, "invalid")
            .verdict(Verdict::Drop),
    );
    // An internal network: nothing forwarded out of it or into it from
    // elsewhere, a published port of another network included (its DNAT
    // happens before forward, where `ct status dnat` would accept it).
    for bridge in state.bridges.iter().filter(|b| b.internal) {
        let name = bridge.interface.as_str();
        add(
            "forward",
            &format!("internal {name}"),
            new()
                .iifname(false, IfName::Exact(name))
                .oifname(true, IfName::Exact(name))
                .counter()
                .verdict(Verdict::Drop),
        );
        add(
            "forward",
            &format!("internal {name}"),
            new()
                .oifname(false, IfName::Exact(name))
                .iifname(true, IfName::Exact(name))
                .counter()
                .verdict(Verdict::Drop),
        );
    }
    let mut set_id = 0;
    for bridge in &state.bridges {
        for metadata in [IpAddr::V4(METADATA_V4), IpAddr::V6(METADATA_V6)] {
            let family = Family::of(metadata);
            let allowed: Vec<IpAddr> = state
                .metadata_allowed
                .iter()
                .copied()
                .filter(|a| Family::of(*a) == family)
                .collect();
            set_id += 1;
            let rule = new()
                .iifname(false, IfName::Exact(&bridge.interface))
                .daddr(false, (metadata, full_prefix(metadata)))
                .saddr_not_in(family, &allowed, set_id)
                .counter()
                .verdict(Verdict::Drop);
            add("forward", "metadata", rule);
        }
    }
    for bridge in &state.bridges {
        add(
            "forward",
            "published ports",
            new()
                .oifname(false, IfName::Exact(&bridge.interface))
                .ct_status_dnat()
                .verdict(Verdict::Accept),
        );
    }
    for bridge in &state.bridges {
        let name = bridge.interface.as_str();
        add(
            "forward",
            &format!("within {name}"),
            new()
                .iifname(false, IfName::Exact(name))
                .oifname(false, IfName::Exact(name))
                .verdict(Verdict::Accept),
        );
    }
    for bridge in state.bridges.iter().filter(|b| !b.internal) {
        let name = bridge.interface.as_str();
        add(
            "forward",
            &format!("outbound {name}"),
            new()
                .iifname(false, IfName::Exact(name))
                .oifname(true, ANY_BRIDGE)
                .verdict(Verdict::Accept),
        );
    }
    add(
        "forward",
        "isolation",
        new()
            .iifname(false, ANY_BRIDGE)
            .counter()
            .verdict(Verdict::Drop),
    );
    add(
        "forward",
        "isolation",
        new()
            .oifname(false, ANY_BRIDGE)
            .counter()
            .verdict(Verdict::Drop),
    );

    // input: containers reach nothing on the host but DNS on their gateway.
    add(
        "input",
        "established",
        new()
            .iifname(false, ANY_BRIDGE)
            .ct_state(
                NF_CT_STATE_ESTABLISHED_BIT | NF_CT_STATE_RELATED_BIT,
                "established,related",
            )
            .verdict(Verdict::Accept),
    );
    // DNS on a bridge's own server only (redirected there from port 53
    // in prerouting): a container cannot ask another network's server,
    // even with a source address of that network.
    for bridge in &state.bridges {
        let name = bridge.interface.as_str();
        for server in &bridge.dns {
            for (proto, word) in [(IPPROTO_UDP, "udp"), (IPPROTO_TCP, "tcp")] {
                add(
                    "input",
                    &format!("dns {name}"),
                    new()
                        .iifname(false, IfName::Exact(name))
                        .daddr(false, (server.ip(), full_prefix(server.ip())))
                        .l4proto(proto)
                        .dport(word, server.port())
                        .verdict(Verdict::Accept),
                );
            }
        }
    }
    for (proto, comment) in [(IPPROTO_ICMP, "icmp"), (IPPROTO_ICMPV6, "icmpv6")] {
        add(
            "input",
            comment,
            new()
                .iifname(false, ANY_BRIDGE)
                .l4proto(proto)
                .verdict(Verdict::Accept),
        );
    }
    add(
        "input",
        "container to host",
        new()
            .iifname(false, ANY_BRIDGE)
            .counter()
            .verdict(Verdict::Drop),
    );
    if let Some(host) = &state.host {
        host_rules(host, &mut add);
    }

    Ok(Ruleset {
        chains: CHAINS.to_vec(),
        rules,
    })
}

/// The machine's own inbound firewall (after the containers' rules of
/// `input`), and no forwarding of anything but the bridges' traffic: with
/// IPv4 forwarding on for the bridges, the machine must not become a
/// router for its uplink's neighbours.
fn host_rules(host: &HostFirewall, add: &mut impl FnMut(&'static str, &str, RuleBuilder)) {
    add(
        "forward",
        "not a router",
        RuleBuilder::new().counter().verdict(Verdict::Drop),
    );
    add(
        "input",
        "loopback",
        RuleBuilder::new()
            .iifname(false, IfName::Exact("lo"))
            .verdict(Verdict::Accept),
    );
    add(
        "input",
        "replies",
        RuleBuilder::new()
            .ct_state(
                NF_CT_STATE_ESTABLISHED_BIT | NF_CT_STATE_RELATED_BIT,
                "established,related",
            )
            .verdict(Verdict::Accept),
    );
    add(
        "input",
        "invalid",
        RuleBuilder::new()
            .ct_state(NF_CT_STATE_INVALID_BIT, "invalid")
            .verdict(Verdict::Drop),
    );
    for (proto, comment) in [(IPPROTO_ICMP, "icmp"), (IPPROTO_ICMPV6, "icmpv6")] {
        add(
            "input",
            comment,
            RuleBuilder::new().l4proto(proto).verdict(Verdict::Accept),
        );
    }
    // A lease's offer and ack come before there is a connection to
    // match: the DHCPv4 and DHCPv6 client ports.
    for (port, comment) in [(68, "dhcp"), (546, "dhcpv6")] {
        add(
            "input",
            comment,
            RuleBuilder::new()
                .l4proto(IPPROTO_UDP)
                .dport("udp", port)
                .verdict(Verdict::Accept),
        );
    }
    for (protocol, port) in &host.inbound {
        let (proto, word) = match protocol {
            Protocol::Tcp => (IPPROTO_TCP, "tcp"),
            Protocol::Udp => (IPPROTO_UDP, "udp"),
        };
        add(
            "input",
            &format!("inbound {port}/{word}"),
            RuleBuilder::new()
                .l4proto(proto)
                .dport(word, *port)
                .verdict(Verdict::Accept),
        );
    }
    add(
        "input",
        "inbound",
        RuleBuilder::new().counter().verdict(Verdict::Drop),
    );
}

/// The whole address: `/32` or `/128`.
fn full_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// The batch that replaces the table with `ruleset`: NEWTABLE (so the
/// DELTABLE finds one), DELTABLE (chains and rules go with it), NEWTABLE,
/// the chains, the rules.
pub fn replace(ruleset: &Ruleset) -> Batch {
    let mut batch = Batch::new();
    let table = || format!("table inet {TABLE}");
    batch.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, table(), write_table);
    batch.push(NFT_MSG_DELTABLE, 0, table(), |w| {
        w.put_str(NFTA_TABLE_NAME, TABLE)
    });
    batch.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, table(), write_table);
    for chain in &ruleset.chains {
        batch.push(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE,
            format!("chain {}", chain.name),
            |w| {
                w.put_str(NFTA_CHAIN_TABLE, TABLE);
                w.put_str(NFTA_CHAIN_NAME, chain.name);
                if let Some(hook) = chain.hook {
                    w.nest(NFTA_CHAIN_HOOK, |w| {
                        w.put_u32(NFTA_HOOK_HOOKNUM, hook.hook);
                        w.put_u32(NFTA_HOOK_PRIORITY, hook.priority as u32);
                    });
                    w.put_u32(NFTA_CHAIN_POLICY, NF_ACCEPT);
                    w.put_str(NFTA_CHAIN_TYPE, hook.kind);
                }
            },
        );
    }
    let mut position = std::collections::HashMap::<&str, usize>::new();
    for rule in &ruleset.rules {
        let n = position.entry(rule.chain).or_default();
        *n += 1;
        let object = format!(
            "rule {n} of chain {} ({:?}: {})",
            rule.chain, rule.comment, rule.text
        );
        if let Some(set) = &rule.set {
            let object = format!("the set of {object}");
            batch.push(NFT_MSG_NEWSET, NLM_F_CREATE, object.clone(), |w| {
                expr::write_set(w, TABLE, set)
            });
            // (in messages well under an attribute's 64 KiB)
            for chunk in set.elements.chunks(1024) {
                batch.push(NFT_MSG_NEWSETELEM, NLM_F_CREATE, object.clone(), |w| {
                    expr::write_elements(w, TABLE, set.id, chunk)
                });
            }
        }
        batch.push(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, object, |w| {
            w.put_str(NFTA_RULE_TABLE, TABLE);
            w.put_str(NFTA_RULE_CHAIN, rule.chain);
            expr::write_exprs(w, &rule.exprs);
            if !rule.comment.is_empty() {
                w.put(NFTA_RULE_USERDATA, &comment_tlv(&rule.comment));
            }
        });
    }
    batch
}

/// The batch that removes the table, whether or not it exists.
pub fn remove() -> Batch {
    let mut batch = Batch::new();
    let table = || format!("table inet {TABLE}");
    batch.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, table(), write_table);
    batch.push(NFT_MSG_DELTABLE, 0, table(), |w| {
        w.put_str(NFTA_TABLE_NAME, TABLE)
    });
    batch
}

fn write_table(w: &mut super::wire::Writer<'_>) {
    w.put_str(NFTA_TABLE_NAME, TABLE);
    w.put_u32(NFTA_TABLE_FLAGS, 0);
}

/// The rule's comment as nft stores it in NFTA_RULE_USERDATA: a TLV of
/// type NFTNL_UDATA_RULE_COMMENT, a one-byte length, the NUL-terminated
/// text (the length counts the NUL).
pub fn comment_tlv(comment: &str) -> Vec<u8> {
    let mut tlv = vec![NFTNL_UDATA_RULE_COMMENT, (comment.len() + 1) as u8];
    tlv.extend_from_slice(comment.as_bytes());
    tlv.push(0);
    tlv
}

/// The comment in a rule's NFTA_RULE_USERDATA, if it has one.
pub fn comment_of(userdata: &[u8]) -> Option<String> {
    let mut rest = userdata;
    while let [kind, len, tail @ ..] = rest {
        let value = tail.get(..usize::from(*len))?;
        if *kind == NFTNL_UDATA_RULE_COMMENT {
            return Some(super::wire::string(value));
        }
        rest = &tail[usize::from(*len)..];
    }
    None
}

/// What the kernel would refuse, or what would make the table not what
/// `state` says, named by its field.
fn validate(state: &FirewallState) -> Result<(), NftError> {
    let invalid = |field: String, reason: String| NftError::Invalid { field, reason };
    let mut names = HashSet::new();
    for (i, bridge) in state.bridges.iter().enumerate() {
        let field = || format!("bridges[{i}].interface");
        check_ifname(&bridge.interface).map_err(|reason| invalid(field(), reason))?;
        if !names.insert(bridge.interface.as_str()) {
            return Err(invalid(
                field(),
                format!("{:?} is listed twice", bridge.interface),
            ));
        }
        let (v4, p4) = bridge.subnet_v4;
        if !(1..=32).contains(&p4) {
            return Err(invalid(
                format!("bridges[{i}].subnet_v4"),
                format!("{v4}/{p4}: the prefix length must be 1 to 32"),
            ));
        }
        if let Some((v6, p6)) = bridge.subnet_v6
            && !(1..=128).contains(&p6)
        {
            return Err(invalid(
                format!("bridges[{i}].subnet_v6"),
                format!("{v6}/{p6}: the prefix length must be 1 to 128"),
            ));
        }
        for (j, server) in bridge.dns.iter().enumerate() {
            let field = || format!("bridges[{i}].dns[{j}]");
            if server.port() == 0 {
                return Err(invalid(field(), format!("{server}: 0 is not a port")));
            }
            let in_subnet = match server.ip() {
                IpAddr::V4(a) => {
                    let net = ipnet::Ipv4Net::new(v4, p4).ok();
                    net.is_some_and(|n| n.contains(&a))
                }
                IpAddr::V6(a) => bridge
                    .subnet_v6
                    .and_then(|(v6, p6)| ipnet::Ipv6Net::new(v6, p6).ok())
                    .is_some_and(|n| n.contains(&a)),
            };
            if !in_subnet {
                return Err(invalid(
                    field(),
                    format!("{server} is not in the bridge's subnets"),
                ));
            }
        }
    }
    for (i, port) in state.ports.iter().enumerate() {
        let field = |name: &str| format!("ports[{i}].{name}");
        if port.host_port == 0 {
            return Err(invalid(field("host_port"), "0 is not a port".into()));
        }
        if port.container_port == 0 {
            return Err(invalid(field("container_port"), "0 is not a port".into()));
        }
        if port.container_ip.is_unspecified() || port.container_ip.is_multicast() {
            return Err(invalid(
                field("container_ip"),
                format!("{} is not a container's address", port.container_ip),
            ));
        }
        if let Some(host_ip) = port.host_ip
            && Family::of(host_ip) != Family::of(port.container_ip)
        {
            return Err(invalid(
                field("host_ip"),
                format!(
                    "{host_ip} and the container's {} are not of one family",
                    port.container_ip
                ),
            ));
        }
        if !names.contains(port.bridge.as_str()) {
            return Err(invalid(
                field("bridge"),
                format!("{:?} is not one of the bridges", port.bridge),
            ));
        }
        if port.comment.len() > NFTNL_UDATA_COMMENT_MAXLEN {
            return Err(invalid(
                field("comment"),
                format!(
                    "{} bytes, at most {NFTNL_UDATA_COMMENT_MAXLEN}",
                    port.comment.len()
                ),
            ));
        }
        if port.comment.contains('\0') {
            return Err(invalid(
                field("comment"),
                format!("{:?} contains a NUL byte", port.comment),
            ));
        }
    }
    Ok(())
}

/// A name the kernel gives an interface (`dev_valid_name`) and that the
/// wildcard `"husk*"` covers, which isolation depends on.
fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty".into());
    }
    if name.len() >= IFNAMSIZ {
        return Err(format!(
            "{name:?} is {} bytes, an interface name has at most {}",
            name.len(),
            IFNAMSIZ - 1
        ));
    }
    if name.contains('\0') {
        return Err(format!("{name:?} contains a NUL byte"));
    }
    if name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.contains(char::is_whitespace)
    {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    if !name.starts_with(BRIDGE_PREFIX) {
        return Err(format!(
            "{name:?} does not start with {BRIDGE_PREFIX:?}, which the isolation rules match"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::{BridgeRules, PortRule};

    pub fn sample() -> FirewallState {
        FirewallState {
            bridges: vec![
                BridgeRules {
                    interface: "husk0".into(),
                    subnet_v4: (Ipv4Addr::new(172, 17, 0, 0), 16),
                    subnet_v6: Some(("fd00:1::".parse().unwrap(), 64)),
                    internal: false,
                    dns: Vec::new(),
                },
                BridgeRules {
                    interface: "husk1".into(),
                    subnet_v4: (Ipv4Addr::new(172, 18, 0, 0), 20),
                    subnet_v6: None,
                    internal: true,
                    dns: vec!["172.18.0.1:40053".parse().unwrap()],
                },
            ],
            ports: vec![
                PortRule {
                    protocol: Protocol::Tcp,
                    host_ip: None,
                    host_port: 8080,
                    container_ip: "172.17.0.2".parse().unwrap(),
                    container_port: 80,
                    bridge: "husk0".into(),
                    comment: "web 8080->80/tcp".into(),
                },
                PortRule {
                    protocol: Protocol::Udp,
                    host_ip: Some("fd00:1::1".parse().unwrap()),
                    host_port: 53,
                    container_ip: "fd00:1::2".parse().unwrap(),
                    container_port: 5353,
                    bridge: "husk0".into(),
                    comment: "dns".into(),
                },
            ],
            metadata_allowed: vec!["172.17.0.5".parse().unwrap(), "fd00:1::5".parse().unwrap()],
            host: None,
        }
    }

    fn texts(ruleset: &Ruleset, chain: &str) -> Vec<String> {
        ruleset
            .rules
            .iter()
            .filter(|r| r.chain == chain)
            .map(|r| r.text.clone())
            .collect()
    }

    #[test]
    fn a_networks_dns_is_redirected_from_port_53_of_its_gateway_to_its_server() {
        let ruleset = build(&sample()).unwrap();
        let prerouting = texts(&ruleset, "prerouting");
        // First: a published host port 53 does not take the queries.
        assert_eq!(
            prerouting[..2],
            [
                "iifname \"husk1\" meta nfproto ipv4 ip daddr 172.18.0.1 meta l4proto udp th dport 53 \
                 dnat ip to 172.18.0.1:40053",
                "iifname \"husk1\" meta nfproto ipv4 ip daddr 172.18.0.1 meta l4proto tcp th dport 53 \
                 dnat ip to 172.18.0.1:40053",
            ]
        );
        let input = texts(&ruleset, "input");
        let dns: Vec<&String> = input.iter().filter(|r| r.contains("dport")).collect();
        assert_eq!(
            dns,
            [
                "iifname \"husk1\" meta nfproto ipv4 ip daddr 172.18.0.1 meta l4proto udp udp dport 40053 accept",
                "iifname \"husk1\" meta nfproto ipv4 ip daddr 172.18.0.1 meta l4proto tcp tcp dport 40053 accept",
            ]
        );
        // The default bridge has no server: nothing of the host's port 53
        // is open to it.
        assert!(
            !input
                .iter()
                .any(|r| r.contains("husk0") && r.contains("53")),
            "{input:?}"
        );
    }

    #[test]
    fn a_dns_server_outside_its_bridge_or_without_a_port_is_refused() {
        for bad in ["172.19.0.1:40053", "172.18.0.1:0", "[fd00:1::1]:40053"] {
            let mut state = sample();
            state.bridges[1].dns = vec![bad.parse().unwrap()];
            let err = build(&state).unwrap_err().to_string();
            assert!(err.contains("bridges[1].dns[0]"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_rules_read_as_nft_would_take_them() {
        let ruleset = build(&sample()).unwrap();
        assert_eq!(
            texts(&ruleset, "ports"),
            [
                "meta nfproto ipv4 meta l4proto tcp th dport 8080 dnat ip to 172.17.0.2:80",
                "meta nfproto ipv6 ip6 daddr fd00:1::1 meta l4proto udp th dport 53 \
                 dnat ip6 to [fd00:1::2]:5353",
            ]
        );
        assert_eq!(
            texts(&ruleset, "postrouting"),
            [
                "meta nfproto ipv4 ip saddr 172.17.0.0/16 oifname != \"husk0\" masquerade",
                "meta nfproto ipv6 ip6 saddr fd00:1::/64 oifname != \"husk0\" masquerade",
                "oifname \"husk0\" ct status dnat meta nfproto ipv4 ip saddr 172.17.0.0/16 masquerade",
                "oifname \"husk0\" ct status dnat meta nfproto ipv6 ip6 saddr fd00:1::/64 masquerade",
                "oifname \"husk0\" meta nfproto ipv4 ip saddr 127.0.0.0/8 masquerade",
                "oifname \"husk1\" ct status dnat meta nfproto ipv4 ip saddr 172.18.0.0/20 masquerade",
                "oifname \"husk1\" meta nfproto ipv4 ip saddr 127.0.0.0/8 masquerade",
            ]
        );
        let forward = texts(&ruleset, "forward");
        assert_eq!(forward[0], "ct state established,related accept");
        // The internal bridge, closed both ways before anything accepts.
        assert_eq!(
            forward[2..4],
            [
                "iifname \"husk1\" oifname != \"husk1\" counter drop",
                "oifname \"husk1\" iifname != \"husk1\" counter drop",
            ]
        );
        let forward = [&forward[..2], &forward[4..]].concat();
        assert_eq!(
            forward[2],
            "iifname \"husk0\" meta nfproto ipv4 ip daddr 169.254.169.254 \
             ip saddr != 172.17.0.5 counter drop"
        );
        assert_eq!(
            forward[3],
            "iifname \"husk0\" meta nfproto ipv6 ip6 daddr fd00:ec2::254 \
             ip6 saddr != fd00:1::5 counter drop"
        );
        // The internal bridge has no way out.
        assert!(forward.contains(&"iifname \"husk0\" oifname != \"husk*\" accept".to_string()));
        assert!(
            !forward
                .iter()
                .any(|t| t.starts_with("iifname \"husk1\" oifname !="))
        );
        assert_eq!(forward.last().unwrap(), "oifname \"husk*\" counter drop");
        assert_eq!(
            texts(&ruleset, "input").last().unwrap(),
            "iifname \"husk*\" counter drop"
        );
    }

    /// In the inet table a network-header offset means a field of IPv4
    /// or of IPv6: every load from it must follow the matching
    /// `meta nfproto`, and every dnat its family's.
    #[test]
    fn no_network_header_load_without_its_family() {
        let ruleset = build(&sample()).unwrap();
        for rule in &ruleset.rules {
            let mut family = None;
            for pair in rule.exprs.windows(2) {
                if pair[0]
                    == (Expr::Meta {
                        key: NFT_META_NFPROTO,
                    })
                {
                    let Expr::Cmp {
                        op: NFT_CMP_EQ,
                        data,
                    } = &pair[1]
                    else {
                        panic!("{}", rule.text)
                    };
                    family = Some(data[0]);
                }
            }
            for e in &rule.exprs {
                match e {
                    Expr::Payload {
                        base: NFT_PAYLOAD_NETWORK_HEADER,
                        offset,
                        len,
                    } => {
                        let want = match (offset, len) {
                            (12 | 16, 1..=4) => NFPROTO_IPV4,
                            (8 | 24, 1..=16) => NFPROTO_IPV6,
                            _ => panic!("{}: {e:?}", rule.text),
                        };
                        assert_eq!(family, Some(want), "{}", rule.text);
                    }
                    Expr::Dnat { family: f } => assert_eq!(family, Some(*f), "{}", rule.text),
                    Expr::Payload {
                        base: NFT_PAYLOAD_TRANSPORT_HEADER,
                        ..
                    } => {
                        assert!(rule.text.contains("meta l4proto"), "{}", rule.text)
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn every_rule_has_a_comment_and_drops_are_counted() {
        let ruleset = build(&sample()).unwrap();
        for rule in &ruleset.rules {
            assert!(!rule.comment.is_empty(), "{}", rule.text);
            if rule.text.ends_with(" drop") && rule.comment != "invalid" {
                assert!(rule.text.ends_with("counter drop"), "{}", rule.text);
            }
        }
        let empty = build(&FirewallState::default()).unwrap();
        assert_eq!(empty.chains.len(), 6);
        assert_eq!(texts(&empty, "ports").len(), 0);
        assert_eq!(texts(&empty, "forward").len(), 4);
    }

    #[test]
    fn comments_are_nft_userdata() {
        assert_eq!(comment_tlv("x"), [0, 2, b'x', 0]);
        assert_eq!(
            comment_of(&comment_tlv("metadata")).as_deref(),
            Some("metadata")
        );
        // Another TLV first, then the comment.
        assert_eq!(
            comment_of(&[1, 1, 9, 0, 3, b'a', b'b', 0]).as_deref(),
            Some("ab")
        );
        assert_eq!(comment_of(&[0, 9, b'a']), None);
        assert_eq!(comment_of(&[]), None);
    }

    #[test]
    fn the_batch_replaces_the_table() {
        let ruleset = build(&sample()).unwrap();
        let (datagram, objects) = replace(&ruleset).seal();
        let kinds: Vec<u16> = crate::nft::wire::messages(&datagram)
            .map(|m| m.unwrap().kind & 0xff)
            .collect();
        let mut want = vec![0x10, NFT_MSG_NEWTABLE, NFT_MSG_DELTABLE, NFT_MSG_NEWTABLE];
        want.extend([NFT_MSG_NEWCHAIN; 6]);
        want.extend(vec![NFT_MSG_NEWRULE; ruleset.rules.len()]);
        want.push(0x11);
        assert_eq!(kinds, want);
        assert_eq!(objects[3], "chain prerouting");
        assert_eq!(
            objects[9],
            "rule 1 of chain prerouting (\"dns husk1\": iifname \"husk1\" meta nfproto ipv4 \
             ip daddr 172.18.0.1 meta l4proto udp th dport 53 dnat ip to 172.18.0.1:40053)"
        );
        assert_eq!(
            objects[11],
            "rule 3 of chain prerouting (\"published ports\": fib daddr type local jump ports)"
        );
        assert!(
            objects.contains(
                &"rule 1 of chain ports (\"web 8080->80/tcp\": meta nfproto ipv4 meta l4proto tcp \
              th dport 8080 dnat ip to 172.17.0.2:80)"
                    .to_string()
            )
        );
    }

    #[test]
    fn several_allowed_addresses_are_a_set_made_before_its_rule() {
        let mut state = sample();
        state.bridges.pop();
        state.metadata_allowed = (1..=3000u16)
            .map(|i| IpAddr::V4(Ipv4Addr::new(172, 17, (i >> 8) as u8, i as u8)))
            .collect();
        let ruleset = build(&state).unwrap();
        let rule = &ruleset
            .rules
            .iter()
            .filter(|r| r.comment == "metadata")
            .collect::<Vec<_>>();
        assert!(rule[0].text.starts_with(
            "iifname \"husk0\" meta nfproto ipv4 ip daddr 169.254.169.254 \
             ip saddr != { 172.17.0.1, 172.17.0.2, "
        ));
        assert!(rule[0].text.ends_with(", 172.17.11.184 } counter drop"));
        assert_eq!(rule[0].set.as_ref().unwrap().elements.len(), 3000);
        assert!(rule[0].exprs.contains(&Expr::Lookup {
            set_id: 1,
            negate: true
        }));
        // No IPv6 address: the IPv6 rule has no set and no saddr match.
        assert_eq!(rule[1].set, None);
        assert!(!rule[1].text.contains("saddr"));

        let (datagram, objects) = replace(&ruleset).seal();
        let messages: Vec<_> = crate::nft::wire::messages(&datagram)
            .map(Result::unwrap)
            .collect();
        let at = |i: usize| messages[i + 1].kind & 0xff;
        let set = objects
            .iter()
            .position(|o| o.starts_with("the set of"))
            .unwrap();
        assert_eq!(at(set), NFT_MSG_NEWSET);
        // 3000 elements in three messages, then the rule.
        assert_eq!(
            [at(set + 1), at(set + 2), at(set + 3)],
            [NFT_MSG_NEWSETELEM; 3]
        );
        assert_eq!(at(set + 4), NFT_MSG_NEWRULE);
        assert_eq!(objects[set], format!("the set of {}", objects[set + 4]));
        assert!(objects[set + 4].starts_with("rule 3 of chain forward (\"metadata\": "));
        // The set: anonymous, constant, of IPv4 addresses, numbered 1.
        let attrs = &messages[set + 1].payload[4..];
        let get = |kind| crate::nft::wire::find(attrs, kind).unwrap().unwrap();
        assert_eq!(get(NFTA_SET_NAME), b"__set%d\0");
        assert_eq!(
            get(NFTA_SET_FLAGS),
            (NFT_SET_ANONYMOUS | NFT_SET_CONSTANT).to_be_bytes()
        );
        assert_eq!(get(NFTA_SET_KEY_LEN), 4u32.to_be_bytes());
        assert_eq!(get(NFTA_SET_ID), 1u32.to_be_bytes());
        let attrs = &messages[set + 2].payload[4..];
        let list = crate::nft::wire::find(attrs, NFTA_SET_ELEM_LIST_ELEMENTS)
            .unwrap()
            .unwrap();
        let first = crate::nft::wire::attrs(list).next().unwrap().unwrap().1;
        let key = crate::nft::wire::find(first, NFTA_SET_ELEM_KEY)
            .unwrap()
            .unwrap();
        assert_eq!(key, [8, 0, 1, 0, 172, 17, 0, 1]);
    }

    #[test]
    fn counters_start_where_the_rule_of_the_same_chain_comment_and_place_stood() {
        let mut ruleset = build(&sample()).unwrap();
        let key = |chain: &str, comment: &str, n| (chain.to_string(), comment.to_string(), n);
        let old = Counts::from([
            (key("input", "container to host", 0), (3, 87)),
            (key("forward", "isolation", 1), (5, 500)),
            (key("forward", "metadata", 3), (7, 700)),
            // Gone from the new table: nothing takes it.
            (key("forward", "isolation", 2), (9, 900)),
        ]);
        ruleset.seed_counters(&old);
        fn counts(ruleset: &Ruleset, comment: &str) -> Vec<(u64, u64)> {
            let rules = ruleset.rules.iter().filter(|r| r.comment == comment);
            let counters = rules.flat_map(|r| &r.exprs).filter_map(|e| match e {
                Expr::Counter { packets, bytes } => Some((*packets, *bytes)),
                _ => None,
            });
            counters.collect()
        }
        assert_eq!(counts(&ruleset, "container to host"), [(3, 87)]);
        assert_eq!(counts(&ruleset, "isolation"), [(0, 0), (5, 500)]);
        // Two bridges, an IPv4 and an IPv6 rule each.
        assert_eq!(
            counts(&ruleset, "metadata"),
            [(0, 0), (0, 0), (0, 0), (7, 700)]
        );
        // Seeding again from nothing: all back to 0.
        ruleset.seed_counters(&Counts::new());
        assert_eq!(counts(&ruleset, "container to host"), [(0, 0)]);
    }

    fn refused(state: FirewallState) -> String {
        match build(&state) {
            Err(e @ NftError::Invalid { .. }) => e.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_the_kernel_would_refuse_is_refused_first_by_field() {
        let mut state = sample();
        state.bridges[1].interface = "husk0123456789ab".into();
        assert_eq!(
            refused(state),
            "bridges[1].interface: \"husk0123456789ab\" is 16 bytes, \
             an interface name has at most 15"
        );
        let mut state = sample();
        state.bridges[0].interface = "husk\0".into();
        assert_eq!(
            refused(state),
            "bridges[0].interface: \"husk\\0\" contains a NUL byte"
        );
        let mut state = sample();
        state.bridges[0].interface = "br0".into();
        assert!(refused(state).contains("does not start with \"husk\""));
        let mut state = sample();
        state.bridges[1].interface = "husk0".into();
        assert!(refused(state).contains("listed twice"));
        let mut state = sample();
        state.bridges[0].subnet_v4.1 = 0;
        assert!(refused(state).starts_with("bridges[0].subnet_v4: "));
        let mut state = sample();
        state.ports[0].host_ip = Some("::1".parse().unwrap());
        assert!(refused(state).starts_with("ports[0].host_ip: ::1 and the container's 172.17.0.2"));
        let mut state = sample();
        state.ports[1].bridge = "husk9".into();
        assert!(refused(state).starts_with("ports[1].bridge: "));
        let mut state = sample();
        state.ports[1].comment = "x".repeat(129);
        assert!(refused(state).starts_with("ports[1].comment: 129 bytes"));
        let mut state = sample();
        state.ports[0].host_port = 0;
        assert!(refused(state).starts_with("ports[0].host_port: "));
    }
}
