//! Rules as the kernel runs them: a list of expressions over registers
//! (load a field into a register, compare it, set a verdict), and a
//! builder that writes each rule from nft's words, so that what nft
//! prints is what the code says.
//!
//! Register data is in the order the kernel holds it: packet fields
//! (addresses, ports) in network order; `meta nfproto`/`l4proto` one
//! byte; `ct state`, `ct status` and `fib ... type` host-order u32s;
//! interface names IFNAMSIZ bytes, NUL-padded.

use std::net::IpAddr;

use super::uapi::*;
use super::wire::Writer;

/// One expression (`struct nft_expr_type`, by its name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `meta load KEY => reg`.
    Meta { key: u32 },
    /// `payload load LEN @ BASE + OFFSET => reg`.
    Payload { base: u32, offset: u32, len: u32 },
    /// `ct load KEY => reg` (original direction's view).
    Ct { key: u32 },
    /// `fib daddr type => reg`.
    FibDaddrType,
    /// `reg = (reg & mask) ^ 0`.
    Mask(Vec<u8>),
    /// `cmp OP reg DATA`: the first `DATA.len()` bytes of the register.
    Cmp { op: u32, data: Vec<u8> },
    /// `immediate reg N DATA`.
    Load { reg: u32, data: Vec<u8> },
    /// `counter`, starting at `packets` and `bytes` (0 for a new rule;
    /// the old table's count when the table is replaced, see
    /// `Ruleset::seed_counters`).
    Counter { packets: u64, bytes: u64 },
    /// `masq`.
    Masquerade,
    /// `nat dnat FAMILY addr_min reg 1 proto_min reg 2`.
    Dnat { family: u8 },
    /// `immediate reg 0 VERDICT`.
    Verdict(Verdict),
    /// `lookup reg 1 set __set%d [inverted]`: the anonymous set the batch
    /// creates with `set_id` (in the rule's family).
    Lookup { set_id: u32, negate: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Jump(&'static str),
}

impl Expr {
    /// The expression type's name, as the kernel registers it.
    pub fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Ct { .. } => "ct",
            Expr::FibDaddrType => "fib",
            Expr::Mask(_) => "bitwise",
            Expr::Cmp { .. } => "cmp",
            Expr::Load { .. } | Expr::Verdict(_) => "immediate",
            Expr::Counter { .. } => "counter",
            Expr::Masquerade => "masq",
            Expr::Dnat { .. } => "nat",
            Expr::Lookup { .. } => "lookup",
        }
    }

    /// `NFTA_EXPR_DATA`'s attributes. Every load and compare uses
    /// register 1 (`NFT_REG_1`, 16 bytes); dnat's port goes in 2.
    fn write_data(&self, w: &mut Writer<'_>) {
        match self {
            Expr::Meta { key } => {
                w.put_u32(NFTA_META_DREG, NFT_REG_1);
                w.put_u32(NFTA_META_KEY, *key);
            }
            Expr::Payload { base, offset, len } => {
                w.put_u32(NFTA_PAYLOAD_DREG, NFT_REG_1);
                w.put_u32(NFTA_PAYLOAD_BASE, *base);
                w.put_u32(NFTA_PAYLOAD_OFFSET, *offset);
                w.put_u32(NFTA_PAYLOAD_LEN, *len);
            }
            Expr::Ct { key } => {
                w.put_u32(NFTA_CT_DREG, NFT_REG_1);
                w.put_u32(NFTA_CT_KEY, *key);
            }
            Expr::FibDaddrType => {
                w.put_u32(NFTA_FIB_DREG, NFT_REG_1);
                w.put_u32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
                w.put_u32(NFTA_FIB_FLAGS, NFTA_FIB_F_DADDR);
            }
            Expr::Mask(mask) => {
                w.put_u32(NFTA_BITWISE_SREG, NFT_REG_1);
                w.put_u32(NFTA_BITWISE_DREG, NFT_REG_1);
                w.put_u32(NFTA_BITWISE_LEN, mask.len() as u32);
                w.put_value(NFTA_BITWISE_MASK, mask);
                w.put_value(NFTA_BITWISE_XOR, &vec![0; mask.len()]);
            }
            Expr::Cmp { op, data } => {
                w.put_u32(NFTA_CMP_SREG, NFT_REG_1);
                w.put_u32(NFTA_CMP_OP, *op);
                w.put_value(NFTA_CMP_DATA, data);
            }
            Expr::Load { reg, data } => {
                w.put_u32(NFTA_IMMEDIATE_DREG, *reg);
                w.put_value(NFTA_IMMEDIATE_DATA, data);
            }
            // nft_counter_do_init takes both as the starting values.
            Expr::Counter { packets, bytes } => {
                w.put_u64(NFTA_COUNTER_BYTES, *bytes);
                w.put_u64(NFTA_COUNTER_PACKETS, *packets);
            }
            Expr::Masquerade => {}
            Expr::Dnat { family } => {
                w.put_u32(NFTA_NAT_TYPE, NFT_NAT_DNAT);
                w.put_u32(NFTA_NAT_FAMILY, u32::from(*family));
                w.put_u32(NFTA_NAT_REG_ADDR_MIN, NFT_REG_1);
                w.put_u32(NFTA_NAT_REG_PROTO_MIN, NFT_REG_2);
                w.put_u32(NFTA_NAT_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
            }
            Expr::Lookup { set_id, negate } => {
                w.put_u32(NFTA_LOOKUP_SREG, NFT_REG_1);
                w.put_str(NFTA_LOOKUP_SET, ANONYMOUS_SET_NAME);
                w.put_u32(NFTA_LOOKUP_SET_ID, *set_id);
                w.put_u32(
                    NFTA_LOOKUP_FLAGS,
                    if *negate { NFT_LOOKUP_F_INV } else { 0 },
                );
            }
            Expr::Verdict(verdict) => {
                w.put_u32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                w.nest(NFTA_IMMEDIATE_DATA, |w| {
                    w.nest(NFTA_DATA_VERDICT, |w| match verdict {
                        Verdict::Accept => w.put_u32(NFTA_VERDICT_CODE, NF_ACCEPT),
                        Verdict::Drop => w.put_u32(NFTA_VERDICT_CODE, NF_DROP),
                        Verdict::Jump(chain) => {
                            w.put_u32(NFTA_VERDICT_CODE, NFT_JUMP as u32);
                            w.put_str(NFTA_VERDICT_CHAIN, chain);
                        }
                    })
                });
            }
        }
    }
}

/// `NFTA_RULE_EXPRESSIONS`: a list of `{ NFTA_EXPR_NAME, NFTA_EXPR_DATA }`.
pub fn write_exprs(w: &mut Writer<'_>, exprs: &[Expr]) {
    w.nest(NFTA_RULE_EXPRESSIONS, |w| {
        for expr in exprs {
            w.nest(NFTA_LIST_ELEM, |w| {
                w.put_str(NFTA_EXPR_NAME, expr.name());
                w.nest(NFTA_EXPR_DATA, |w| expr.write_data(w));
            });
        }
    });
}

/// An anonymous constant set of addresses, created in the batch before
/// the rule that looks it up (by `id`, unique in the batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnonSet {
    pub id: u32,
    pub family: Family,
    pub elements: Vec<IpAddr>,
}

/// NFT_MSG_NEWSET's attributes for `set`.
pub fn write_set(w: &mut Writer<'_>, table: &str, set: &AnonSet) {
    let (key_type, key_len) = match set.family {
        Family::V4 => (NFT_TYPE_IPADDR, 4),
        Family::V6 => (NFT_TYPE_IP6ADDR, 16),
    };
    w.put_str(NFTA_SET_TABLE, table);
    w.put_str(NFTA_SET_NAME, ANONYMOUS_SET_NAME);
    w.put_u32(NFTA_SET_FLAGS, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT);
    w.put_u32(NFTA_SET_KEY_TYPE, key_type);
    w.put_u32(NFTA_SET_KEY_LEN, key_len);
    w.put_u32(NFTA_SET_ID, set.id);
}

/// NFT_MSG_NEWSETELEM's attributes: `elements` into the set `set_id`.
pub fn write_elements(w: &mut Writer<'_>, table: &str, set_id: u32, elements: &[IpAddr]) {
    w.put_str(NFTA_SET_ELEM_LIST_TABLE, table);
    w.put_str(NFTA_SET_ELEM_LIST_SET, ANONYMOUS_SET_NAME);
    w.put_u32(NFTA_SET_ELEM_LIST_SET_ID, set_id);
    w.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |w| {
        for addr in elements {
            w.nest(NFTA_LIST_ELEM, |w| {
                let key = match addr {
                    IpAddr::V4(a) => a.octets().to_vec(),
                    IpAddr::V6(a) => a.octets().to_vec(),
                };
                w.put_value(NFTA_SET_ELEM_KEY, &key);
            });
        }
    });
}

/// An address family of the inet table's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(addr: IpAddr) -> Self {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    pub fn nfproto(self) -> u8 {
        match self {
            Family::V4 => NFPROTO_IPV4,
            Family::V6 => NFPROTO_IPV6,
        }
    }

    /// nft's word for the family's header: `ip`, `ip6`.
    pub fn word(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
}

/// An interface name match: a whole name (`"husk0"`, the register's
/// IFNAMSIZ bytes) or nft's wildcard `"husk*"` (the prefix's bytes only).
#[derive(Debug, Clone, Copy)]
pub enum IfName<'a> {
    Exact(&'a str),
    Prefix(&'a str),
}

/// An address or a network: `(address, prefix length)`.
pub type Net = (IpAddr, u8);

/// A rule being written, expression by expression, with nft's text for
/// it (for error messages; it is what nft's input for the rule is).
#[derive(Debug, Default)]
pub struct RuleBuilder {
    exprs: Vec<Expr>,
    words: Vec<String>,
    family: Option<Family>,
    set: Option<AnonSet>,
}

impl RuleBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(mut self, words: String, exprs: impl IntoIterator<Item = Expr>) -> Self {
        self.words.push(words);
        self.exprs.extend(exprs);
        self
    }

    /// `meta nfproto ipv4|ipv6`: what makes a network-header offset mean
    /// the right field in the inet table. Written once, before the first
    /// match that needs it (nft adds the same dependency itself).
    pub fn nfproto(mut self, family: Family) -> Self {
        if self.family.is_some() {
            return self;
        }
        self.family = Some(family);
        let name = match family {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        };
        self.push(
            format!("meta nfproto {name}"),
            [meta(NFT_META_NFPROTO), eq(vec![family.nfproto()])],
        )
    }

    pub fn iifname(self, negate: bool, name: IfName<'_>) -> Self {
        self.ifname("iifname", NFT_META_IIFNAME, negate, name)
    }

    pub fn oifname(self, negate: bool, name: IfName<'_>) -> Self {
        self.ifname("oifname", NFT_META_OIFNAME, negate, name)
    }

    fn ifname(self, word: &str, key: u32, negate: bool, name: IfName<'_>) -> Self {
        let (data, shown) = match name {
            IfName::Exact(name) => {
                let mut data = name.as_bytes().to_vec();
                data.resize(IFNAMSIZ, 0);
                (data, name.to_string())
            }
            IfName::Prefix(prefix) => (prefix.as_bytes().to_vec(), format!("{prefix}*")),
        };
        self.push(
            format!("{word} {}\"{shown}\"", not(negate)),
            [meta(key), cmp(negate, data)],
        )
    }

    /// `ip|ip6 saddr NET` (after its `meta nfproto`).
    pub fn saddr(self, negate: bool, net: Net) -> Self {
        self.addr("saddr", negate, net)
    }

    /// `ip|ip6 daddr NET` (after its `meta nfproto`).
    pub fn daddr(self, negate: bool, net: Net) -> Self {
        self.addr("daddr", negate, net)
    }

    fn addr(self, word: &str, negate: bool, (addr, prefix): Net) -> Self {
        let family = Family::of(addr);
        // iphdr: saddr at 12, daddr at 16; ipv6hdr: saddr at 8, daddr at 24.
        let (bytes, offset): (Vec<u8>, u32) = match (addr, word) {
            (IpAddr::V4(a), "saddr") => (a.octets().to_vec(), 12),
            (IpAddr::V4(a), _) => (a.octets().to_vec(), 16),
            (IpAddr::V6(a), "saddr") => (a.octets().to_vec(), 8),
            (IpAddr::V6(a), _) => (a.octets().to_vec(), 24),
        };
        let full = bytes.len() * 8;
        let prefix = usize::from(prefix).min(full);
        let shown = if prefix == full {
            addr.to_string()
        } else {
            format!("{}/{prefix}", mask_addr(addr, prefix as u8))
        };
        let mut exprs = Vec::new();
        if prefix % 8 == 0 {
            // A whole number of bytes: load and compare just those.
            let len = prefix / 8;
            exprs.push(payload(NFT_PAYLOAD_NETWORK_HEADER, offset, len as u32));
            exprs.push(cmp(negate, bytes[..len].to_vec()));
        } else {
            // Else the whole address, masked.
            let mask: Vec<u8> = (0..bytes.len())
                .map(|i| {
                    let bits = prefix.saturating_sub(i * 8).min(8);
                    (0xffu16 << (8 - bits)) as u8
                })
                .collect();
            let net = bytes.iter().zip(&mask).map(|(b, m)| b & m).collect();
            exprs.push(payload(
                NFT_PAYLOAD_NETWORK_HEADER,
                offset,
                bytes.len() as u32,
            ));
            exprs.push(Expr::Mask(mask));
            exprs.push(cmp(negate, net));
        }
        self.nfproto(family).push(
            format!("{} {word} {}{shown}", family.word(), not(negate)),
            exprs,
        )
    }

    /// `ip|ip6 saddr != { A, B, ... }`: none of `addrs` (all of
    /// `family`), as an anonymous set numbered `set_id` (one address is a
    /// plain `!=`, none matches everything). A rule has one set at most.
    pub fn saddr_not_in(self, family: Family, addrs: &[IpAddr], set_id: u32) -> Self {
        match addrs {
            [] => self,
            [addr] => self.saddr(true, (*addr, if addr.is_ipv4() { 32 } else { 128 })),
            _ => {
                let offset = match family {
                    Family::V4 => 12,
                    Family::V6 => 8,
                };
                let len = if family == Family::V4 { 4 } else { 16 };
                let shown: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
                let mut rule = self.nfproto(family).push(
                    format!("{} saddr != {{ {} }}", family.word(), shown.join(", ")),
                    [
                        payload(NFT_PAYLOAD_NETWORK_HEADER, offset, len),
                        Expr::Lookup {
                            set_id,
                            negate: true,
                        },
                    ],
                );
                rule.set = Some(AnonSet {
                    id: set_id,
                    family,
                    elements: addrs.to_vec(),
                });
                rule
            }
        }
    }

    /// `meta l4proto NAME`.
    pub fn l4proto(self, proto: u8) -> Self {
        let name = match proto {
            IPPROTO_TCP => "tcp".to_string(),
            IPPROTO_UDP => "udp".to_string(),
            IPPROTO_ICMP => "icmp".to_string(),
            IPPROTO_ICMPV6 => "ipv6-icmp".to_string(),
            n => n.to_string(),
        };
        self.push(
            format!("meta l4proto {name}"),
            [meta(NFT_META_L4PROTO), eq(vec![proto])],
        )
    }

    /// `th dport PORT` (udphdr and tcphdr both keep it at 2), written as
    /// `WORD dport` (`th`, `tcp`, `udp`): after a `meta l4proto`.
    pub fn dport(self, word: &str, port: u16) -> Self {
        self.push(
            format!("{word} dport {port}"),
            [
                payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2),
                eq(port.to_be_bytes().to_vec()),
            ],
        )
    }

    /// `ct state established,related` / `ct state invalid`: any of `bits`.
    pub fn ct_state(self, bits: u32, names: &str) -> Self {
        self.push(format!("ct state {names}"), ct_any(NFT_CT_STATE, bits))
    }

    /// `ct status dnat`: the connection was destination-NATed.
    pub fn ct_status_dnat(self) -> Self {
        self.push("ct status dnat".into(), ct_any(NFT_CT_STATUS, IPS_DST_NAT))
    }

    /// `fib daddr type local`: the destination is one of the host's.
    pub fn fib_daddr_local(self) -> Self {
        self.push(
            "fib daddr type local".into(),
            [Expr::FibDaddrType, eq(RTN_LOCAL.to_ne_bytes().to_vec())],
        )
    }

    pub fn counter(self) -> Self {
        let counter = Expr::Counter {
            packets: 0,
            bytes: 0,
        };
        self.push("counter".into(), [counter])
    }

    pub fn masquerade(self) -> Self {
        self.push("masquerade".into(), [Expr::Masquerade])
    }

    /// `dnat ip|ip6 to ADDR:PORT` (after its `meta nfproto`).
    pub fn dnat(self, addr: IpAddr, port: u16) -> Self {
        let family = Family::of(addr);
        let (bytes, shown) = match addr {
            IpAddr::V4(a) => (a.octets().to_vec(), format!("{a}:{port}")),
            IpAddr::V6(a) => (a.octets().to_vec(), format!("[{a}]:{port}")),
        };
        self.nfproto(family).push(
            format!("dnat {} to {shown}", family.word()),
            [
                Expr::Load {
                    reg: NFT_REG_1,
                    data: bytes,
                },
                Expr::Load {
                    reg: NFT_REG_2,
                    data: port.to_be_bytes().to_vec(),
                },
                Expr::Dnat {
                    family: family.nfproto(),
                },
            ],
        )
    }

    pub fn verdict(self, verdict: Verdict) -> Self {
        let words = match verdict {
            Verdict::Accept => "accept".to_string(),
            Verdict::Drop => "drop".to_string(),
            Verdict::Jump(chain) => format!("jump {chain}"),
        };
        self.push(words, [Expr::Verdict(verdict)])
    }

    /// The expressions and nft's text for them.
    pub fn finish(self) -> (Vec<Expr>, String) {
        (self.exprs, self.words.join(" "))
    }

    /// The set the rule looks up, to be created before it.
    pub fn set(&self) -> Option<&AnonSet> {
        self.set.as_ref()
    }
}

fn not(negate: bool) -> &'static str {
    if negate { "!= " } else { "" }
}

fn meta(key: u32) -> Expr {
    Expr::Meta { key }
}

fn payload(base: u32, offset: u32, len: u32) -> Expr {
    Expr::Payload { base, offset, len }
}

fn eq(data: Vec<u8>) -> Expr {
    Expr::Cmp {
        op: NFT_CMP_EQ,
        data,
    }
}

fn cmp(negate: bool, data: Vec<u8>) -> Expr {
    let op = if negate { NFT_CMP_NEQ } else { NFT_CMP_EQ };
    Expr::Cmp { op, data }
}

/// `ct KEY & bits != 0`: nft's encoding of a flag list.
fn ct_any(key: u32, bits: u32) -> [Expr; 3] {
    [
        Expr::Ct { key },
        Expr::Mask(bits.to_ne_bytes().to_vec()),
        Expr::Cmp {
            op: NFT_CMP_NEQ,
            data: vec![0; 4],
        },
    ]
}

/// `addr` with the bits past `prefix` cleared.
pub fn mask_addr(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((bits & mask).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::wire::{attrs, find};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: [u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(a))
    }

    #[test]
    fn a_byte_aligned_prefix_compares_only_its_bytes() {
        let (exprs, text) = RuleBuilder::new()
            .saddr(false, (v4([172, 17, 0, 1]), 16))
            .masquerade()
            .finish();
        assert_eq!(text, "meta nfproto ipv4 ip saddr 172.17.0.0/16 masquerade");
        assert_eq!(
            exprs,
            [
                Expr::Meta {
                    key: NFT_META_NFPROTO
                },
                Expr::Cmp {
                    op: NFT_CMP_EQ,
                    data: vec![NFPROTO_IPV4]
                },
                Expr::Payload {
                    base: NFT_PAYLOAD_NETWORK_HEADER,
                    offset: 12,
                    len: 2
                },
                Expr::Cmp {
                    op: NFT_CMP_EQ,
                    data: vec![172, 17]
                },
                Expr::Masquerade,
            ]
        );
    }

    #[test]
    fn other_prefixes_are_masked() {
        let (exprs, text) = RuleBuilder::new()
            .daddr(true, (v4([172, 31, 255, 1]), 12))
            .finish();
        assert_eq!(text, "meta nfproto ipv4 ip daddr != 172.16.0.0/12");
        assert_eq!(
            exprs[2],
            Expr::Payload {
                base: NFT_PAYLOAD_NETWORK_HEADER,
                offset: 16,
                len: 4
            }
        );
        assert_eq!(exprs[3], Expr::Mask(vec![0xff, 0xf0, 0, 0]));
        assert_eq!(
            exprs[4],
            Expr::Cmp {
                op: NFT_CMP_NEQ,
                data: vec![172, 16, 0, 0]
            }
        );
        let v6: Ipv6Addr = "fd00:1:2:3::1".parse().unwrap();
        let (exprs, text) = RuleBuilder::new().saddr(false, (v6.into(), 60)).finish();
        assert_eq!(text, "meta nfproto ipv6 ip6 saddr fd00:1:2::/60");
        assert_eq!(
            exprs[1],
            Expr::Cmp {
                op: NFT_CMP_EQ,
                data: vec![NFPROTO_IPV6]
            }
        );
        assert_eq!(
            exprs[2],
            Expr::Payload {
                base: NFT_PAYLOAD_NETWORK_HEADER,
                offset: 8,
                len: 16
            }
        );
        let Expr::Mask(mask) = &exprs[3] else {
            panic!("{exprs:?}")
        };
        assert_eq!(mask[..8], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0]);
        assert_eq!(mask[8..], [0; 8]);
    }

    #[test]
    fn a_whole_address_has_no_prefix_and_nfproto_is_written_once() {
        let (exprs, text) = RuleBuilder::new()
            .daddr(false, (v4([169, 254, 169, 254]), 32))
            .saddr(true, (v4([10, 0, 0, 2]), 32))
            .finish();
        assert_eq!(
            text,
            "meta nfproto ipv4 ip daddr 169.254.169.254 ip saddr != 10.0.0.2"
        );
        assert_eq!(
            exprs
                .iter()
                .filter(|e| **e == meta(NFT_META_NFPROTO))
                .count(),
            1
        );
    }

    #[test]
    fn interface_names_are_padded_unless_wildcards() {
        let (exprs, text) = RuleBuilder::new()
            .iifname(false, IfName::Exact("husk0"))
            .oifname(true, IfName::Prefix("husk"))
            .finish();
        assert_eq!(text, "iifname \"husk0\" oifname != \"husk*\"");
        assert_eq!(
            exprs[1],
            Expr::Cmp {
                op: NFT_CMP_EQ,
                data: b"husk0\0\0\0\0\0\0\0\0\0\0\0".to_vec()
            }
        );
        assert_eq!(
            exprs[2],
            Expr::Meta {
                key: NFT_META_OIFNAME
            }
        );
        assert_eq!(
            exprs[3],
            Expr::Cmp {
                op: NFT_CMP_NEQ,
                data: b"husk".to_vec()
            }
        );
    }

    #[test]
    fn ports_are_big_endian_and_ct_bits_host_order() {
        let (exprs, text) = RuleBuilder::new()
            .l4proto(IPPROTO_TCP)
            .dport("th", 8080)
            .dnat(v4([172, 17, 0, 2]), 80)
            .finish();
        assert_eq!(
            text,
            "meta l4proto tcp th dport 8080 meta nfproto ipv4 dnat ip to 172.17.0.2:80"
        );
        assert_eq!(
            exprs[3],
            Expr::Cmp {
                op: NFT_CMP_EQ,
                data: vec![0x1f, 0x90]
            }
        );
        assert_eq!(
            exprs[6],
            Expr::Load {
                reg: NFT_REG_1,
                data: vec![172, 17, 0, 2]
            }
        );
        assert_eq!(
            exprs[7],
            Expr::Load {
                reg: NFT_REG_2,
                data: vec![0, 80]
            }
        );
        let (exprs, _) = RuleBuilder::new()
            .ct_state(
                NF_CT_STATE_ESTABLISHED_BIT | NF_CT_STATE_RELATED_BIT,
                "established,related",
            )
            .finish();
        assert_eq!(exprs[1], Expr::Mask(6u32.to_ne_bytes().to_vec()));
    }

    #[test]
    fn a_jump_is_a_nested_verdict_with_the_chain_name() {
        let mut buf = Vec::new();
        crate::nft::wire::message(&mut buf, 0, 0, 0, 0, 0, |w| {
            write_exprs(w, &[Expr::Verdict(Verdict::Jump("ports"))]);
        });
        let list = find(&buf[20..], NFTA_RULE_EXPRESSIONS).unwrap().unwrap();
        let elem = find(list, NFTA_LIST_ELEM).unwrap().unwrap();
        assert_eq!(
            find(elem, NFTA_EXPR_NAME).unwrap(),
            Some(&b"immediate\0"[..])
        );
        let data = find(elem, NFTA_EXPR_DATA).unwrap().unwrap();
        assert_eq!(
            find(data, NFTA_IMMEDIATE_DREG).unwrap(),
            Some(&[0, 0, 0, 0][..])
        );
        let imm = find(data, NFTA_IMMEDIATE_DATA).unwrap().unwrap();
        let verdict = find(imm, NFTA_DATA_VERDICT).unwrap().unwrap();
        let fields: Vec<_> = attrs(verdict).map(Result::unwrap).collect();
        assert_eq!(
            fields,
            [
                (NFTA_VERDICT_CODE, &(-3i32).to_be_bytes()[..]),
                (NFTA_VERDICT_CHAIN, &b"ports\0"[..]),
            ]
        );
    }

    #[test]
    fn a_seeded_counter_sends_its_bytes_and_packets_big_endian() {
        let mut buf = Vec::new();
        crate::nft::wire::message(&mut buf, 0, 0, 0, 0, 0, |w| {
            write_exprs(
                w,
                &[Expr::Counter {
                    packets: 3,
                    bytes: 0x0102_0304_0506_0708,
                }],
            );
        });
        let list = find(&buf[20..], NFTA_RULE_EXPRESSIONS).unwrap().unwrap();
        let elem = find(list, NFTA_LIST_ELEM).unwrap().unwrap();
        assert_eq!(find(elem, NFTA_EXPR_NAME).unwrap(), Some(&b"counter\0"[..]));
        let data = find(elem, NFTA_EXPR_DATA).unwrap().unwrap();
        let fields: Vec<_> = attrs(data).map(Result::unwrap).collect();
        assert_eq!(
            fields,
            [
                (NFTA_COUNTER_BYTES, &[1, 2, 3, 4, 5, 6, 7, 8][..]),
                (NFTA_COUNTER_PACKETS, &[0, 0, 0, 0, 0, 0, 0, 3][..]),
            ]
        );
        // On the wire: nla_len 12 (header and value, no padding), type 1.
        let header = [12u16.to_ne_bytes(), NFTA_COUNTER_BYTES.to_ne_bytes()].concat();
        assert_eq!(data[..4], header[..]);
        assert_eq!(data.len(), 24);
        // And the builder's counter starts at zero.
        let (exprs, text) = RuleBuilder::new().counter().finish();
        assert_eq!(text, "counter");
        assert_eq!(
            exprs,
            [Expr::Counter {
                packets: 0,
                bytes: 0
            }]
        );
    }

    #[test]
    fn masks() {
        assert_eq!(mask_addr(v4([10, 1, 2, 3]), 8), v4([10, 0, 0, 0]));
        assert_eq!(mask_addr(v4([10, 1, 2, 3]), 0), v4([0, 0, 0, 0]));
        assert_eq!(mask_addr(v4([10, 1, 2, 3]), 32), v4([10, 1, 2, 3]));
        let a: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(mask_addr(a, 64), "fd00::".parse::<IpAddr>().unwrap());
    }
}
