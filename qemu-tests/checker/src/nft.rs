//! The agent's nftables table read back over nfnetlink, as the guest
//! has no `nft`: the table, its chains, rules and sets (with their
//! elements), each as one line of text that two dumps can be compared
//! by. A line says what the object is (a chain's hook, a rule's chain,
//! comment and expressions) and ends in a hash of every attribute the
//! kernel gave for it but those that change without the ruleset
//! changing: handles, a rule's position, counters' values. So a rule
//! written twice is two equal lines, and a changed one a changed hash.
//!
//! The numbers are the kernel's uapi (linux/netfilter/nf_tables.h); the
//! agent's own encoder (agent/src/nft/) is not used, so a bug there
//! cannot hide in both.

use std::io;

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, sockopt};

/// The agent's table, family inet.
pub const TABLE: &str = "husk";

const NFPROTO_INET: u8 = 1;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLA_TYPE_MASK: u16 = 0x3fff;

// enum nf_tables_msg_types: the GET of each kind; its answers are the NEW.
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_GETSETELEM: u16 = 13;

// Attributes read (the first of each enum is the object's table).
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_HANDLE: u16 = 4;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_HANDLE: u16 = 2;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_CHAIN_COUNTERS: u16 = 8;
const NFTA_CHAIN_ID: u16 = 11;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_POSITION: u16 = 6;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_RULE_ID: u16 = 9;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_COUNTER_PACKETS: u16 = 2;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_HANDLE: u16 = 16;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;

/// A dump answer is at most a few pages; this is ample.
const RECV_BUF: usize = 256 * 1024;
const RECV_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The table as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    /// The table's handle: the kernel numbers each table it creates, so
    /// a table written again (the agent's every rewrite) has a new one.
    /// None: there is no table.
    pub handle: Option<u64>,
    /// One line per chain, rule and set, in the kernel's order.
    pub lines: Vec<String>,
    /// Each counted rule's comment and packets, in the kernel's order.
    pub counters: Vec<(String, u64)>,
}

impl Dump {
    /// The packets counted by the rules commented `comment`, summed.
    pub fn packets(&self, comment: &str) -> u64 {
        self.counters
            .iter()
            .filter(|(c, _)| c == comment)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Reads the agent's table (an absent one is empty, with no handle).
pub fn dump() -> Result<Dump, String> {
    let socket = Socket::open().map_err(|e| format!("a NETLINK_NETFILTER socket: {e}"))?;
    let mut handle = None;
    for table in socket.dump(NFT_MSG_GETTABLE, &[])? {
        if string(find(&table, NFTA_TABLE_NAME)?) == TABLE {
            handle = Some(be_uint(find(&table, NFTA_TABLE_HANDLE)?));
        }
    }
    let mut dump = Dump {
        handle,
        lines: Vec::new(),
        counters: Vec::new(),
    };
    if handle.is_none() {
        return Ok(dump);
    }
    for chain in socket.dump(NFT_MSG_GETCHAIN, &[])? {
        if string(find(&chain, NFTA_CHAIN_TABLE)?) == TABLE {
            dump.lines.push(chain_line(&chain)?);
        }
    }
    let filter = [(NFTA_RULE_TABLE, nul_terminated(TABLE))];
    for rule in socket.dump(NFT_MSG_GETRULE, &filter)? {
        if string(find(&rule, NFTA_RULE_TABLE)?) == TABLE {
            let (line, counter) = rule_line(&rule)?;
            dump.lines.push(line);
            dump.counters.extend(counter);
        }
    }
    for set in socket.dump(NFT_MSG_GETSET, &filter)? {
        if string(find(&set, NFTA_SET_TABLE)?) == TABLE {
            dump.lines.push(set_line(&socket, &set)?);
        }
    }
    Ok(dump)
}

/// `chain NAME [TYPE hook N prio P policy V] #HASH`.
fn chain_line(chain: &[u8]) -> Result<String, String> {
    let mut line = format!("chain {}", string(find(chain, NFTA_CHAIN_NAME)?));
    if let Ok(hook) = find(chain, NFTA_CHAIN_HOOK) {
        let priority = be_uint(find(hook, NFTA_HOOK_PRIORITY)?) as u32 as i32;
        let policy = match be_uint(find(chain, NFTA_CHAIN_POLICY)?) {
            0 => "drop".to_owned(),
            1 => "accept".to_owned(),
            other => other.to_string(),
        };
        line += &format!(
            " {} hook {} prio {priority} policy {policy}",
            string(find(chain, NFTA_CHAIN_TYPE)?),
            be_uint(find(hook, NFTA_HOOK_HOOKNUM)?),
        );
    }
    let hash = hash_attrs(
        chain,
        &[NFTA_CHAIN_HANDLE, NFTA_CHAIN_COUNTERS, NFTA_CHAIN_ID],
    )?;
    Ok(format!("{line} #{hash:016x}"))
}

/// `rule CHAIN "COMMENT" EXPR… #HASH`, and its counter's packets.
fn rule_line(rule: &[u8]) -> Result<(String, Option<(String, u64)>), String> {
    let chain = string(find(rule, NFTA_RULE_CHAIN)?);
    let comment = find(rule, NFTA_RULE_USERDATA).map_or_else(|_| String::new(), comment_of);
    let mut hash = Fnv::default();
    let mut names = Vec::new();
    let mut counter = None;
    for (kind, payload) in attrs(rule) {
        let (kind, payload) = (kind?, payload);
        match kind {
            NFTA_RULE_HANDLE | NFTA_RULE_POSITION | NFTA_RULE_ID => {}
            NFTA_RULE_EXPRESSIONS => {
                for (_, expr) in attrs(payload) {
                    let name = string(find(expr, NFTA_EXPR_NAME)?);
                    hash.attr(NFTA_EXPR_NAME, name.as_bytes());
                    // A counter's data is its values: only that it is there counts.
                    if name == "counter" {
                        let data = find(expr, NFTA_EXPR_DATA)?;
                        counter =
                            Some((comment.clone(), be_uint(find(data, NFTA_COUNTER_PACKETS)?)));
                    } else if let Ok(data) = find(expr, NFTA_EXPR_DATA) {
                        hash.attr(NFTA_EXPR_DATA, data);
                    }
                    names.push(name);
                }
            }
            _ => hash.attr(kind, payload),
        }
    }
    let line = format!(
        "rule {chain} {comment:?} {} #{:016x}",
        names.join(" "),
        hash.0
    );
    Ok((line, counter))
}

/// `set NAME elements HEX,… #HASH` (the elements sorted: a set's
/// backend lists them in its own order).
fn set_line(socket: &Socket, set: &[u8]) -> Result<String, String> {
    let name = string(find(set, NFTA_SET_NAME)?);
    let filter = [
        (NFTA_SET_ELEM_LIST_TABLE, nul_terminated(TABLE)),
        (NFTA_SET_ELEM_LIST_SET, nul_terminated(&name)),
    ];
    let mut elements = Vec::new();
    for answer in socket.dump(NFT_MSG_GETSETELEM, &filter)? {
        let Ok(list) = find(&answer, NFTA_SET_ELEM_LIST_ELEMENTS) else {
            continue;
        };
        for (_, element) in attrs(list) {
            elements.push(hex(find(element, NFTA_SET_ELEM_KEY)?));
        }
    }
    elements.sort();
    let hash = hash_attrs(set, &[NFTA_SET_HANDLE, NFTA_SET_ID])?;
    Ok(format!(
        "set {name} elements {} #{hash:016x}",
        elements.join(",")
    ))
}

/// The hash of `object`'s attributes but those of the kinds `skip`.
fn hash_attrs(object: &[u8], skip: &[u16]) -> Result<u64, String> {
    let mut hash = Fnv::default();
    for (kind, payload) in attrs(object) {
        let kind = kind?;
        if !skip.contains(&kind) {
            hash.attr(kind, payload);
        }
    }
    Ok(hash.0)
}

/// FNV-1a, 64 bits: stable across builds and machines, which std's
/// hasher is not promised to be.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn bytes(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// An attribute, its kind and length first so no two lists of
    /// attributes run together into the same bytes.
    fn attr(&mut self, kind: u16, payload: &[u8]) {
        self.bytes(&kind.to_be_bytes());
        self.bytes(&(payload.len() as u32).to_be_bytes());
        self.bytes(payload);
    }
}

/// libnftnl's comment: TLV type 0, a NUL-terminated string.
fn comment_of(userdata: &[u8]) -> String {
    let mut rest = userdata;
    while let [kind, len, tail @ ..] = rest {
        let len = usize::from(*len);
        let Some(value) = tail.get(..len) else { break };
        if *kind == 0 {
            return string(value);
        }
        rest = &tail[len..];
    }
    String::new()
}

/// The attributes of a netlink payload: (kind, payload), the kind
/// without its flags; an attribute that does not fit is an error.
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (Result<u16, String>, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        let Some(payload) = buf.get(4..len.max(4)) else {
            let error = format!("an attribute of {len} bytes in {}", buf.len());
            buf = &[];
            return Some((Err(error), &[][..]));
        };
        buf = buf.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((Ok(kind), payload))
    })
}

fn find(buf: &[u8], wanted: u16) -> Result<&[u8], String> {
    for (kind, payload) in attrs(buf) {
        if kind? == wanted {
            return Ok(payload);
        }
    }
    Err(format!("no attribute {wanted}"))
}

fn string(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

fn nul_terminated(s: &str) -> Vec<u8> {
    let mut bytes = s.as_bytes().to_vec();
    bytes.push(0);
    bytes
}

/// A big-endian number of up to 8 bytes (nf_tables' u32 and u64).
fn be_uint(payload: &[u8]) -> u64 {
    payload.iter().fold(0, |n, &b| (n << 8) | u64::from(b))
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// A NETLINK_NETFILTER socket of the checker's (the machine's) namespace.
struct Socket(std::os::fd::OwnedFd);

impl Socket {
    fn open() -> io::Result<Self> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            Some(netlink::NETFILTER),
        )?;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, 0))?;
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Recv, Some(RECV_TIMEOUT))?;
        Ok(Socket(fd))
    }

    /// The attributes (after the nfgenmsg) of each object a dump of
    /// `get` with the attributes `filter` answers; a dump the ruleset's
    /// change interrupted (the agent rewriting it) is asked again.
    fn dump(&self, get: u16, filter: &[(u16, Vec<u8>)]) -> Result<Vec<Vec<u8>>, String> {
        let what = format!("dumping nf_tables message {get}");
        for _ in 0..5 {
            let (objects, interrupted) = self
                .dump_once(get, filter)
                .map_err(|e| format!("{what}: {e}"))?;
            if !interrupted {
                return Ok(objects);
            }
        }
        Err(format!("{what}: interrupted five times"))
    }

    fn dump_once(&self, get: u16, filter: &[(u16, Vec<u8>)]) -> io::Result<(Vec<Vec<u8>>, bool)> {
        let mut body = vec![NFPROTO_INET, 0, 0, 0];
        for (kind, value) in filter {
            body.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
            body.extend_from_slice(&kind.to_ne_bytes());
            body.extend_from_slice(value);
            body.resize(body.len().next_multiple_of(4), 0);
        }
        let mut request = Vec::with_capacity(16 + body.len());
        request.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        request.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | get).to_ne_bytes());
        request.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        request.extend_from_slice(&1u32.to_ne_bytes());
        request.extend_from_slice(&0u32.to_ne_bytes());
        request.extend_from_slice(&body);
        rustix::net::send(&self.0, &request, SendFlags::empty())?;
        let mut objects = Vec::new();
        let mut interrupted = false;
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let (read, len) = rustix::net::recv(&self.0, &mut buf[..], RecvFlags::TRUNC)?;
            if len > buf.len() {
                return Err(io::Error::other(format!("a {len}-byte answer")));
            }
            let mut rest = &buf[..read];
            while rest.len() >= 16 {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let flags = u16::from_ne_bytes([rest[6], rest[7]]);
                let Some(message) = rest.get(16..len.max(16)) else {
                    return Err(io::Error::other("a truncated message"));
                };
                interrupted |= flags & NLM_F_DUMP_INTR != 0;
                match kind {
                    NLMSG_DONE | NLMSG_ERROR => {
                        let errno = message
                            .get(..4)
                            .map_or(0, |e| i32::from_ne_bytes([e[0], e[1], e[2], e[3]]));
                        // ENOENT: nothing of that kind in the table.
                        if errno != 0 && errno != -2 {
                            return Err(io::Error::from_raw_os_error(-errno));
                        }
                        return Ok((objects, interrupted));
                    }
                    _ => objects.push(message.get(4..).unwrap_or_default().to_vec()),
                }
                rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(payload);
        out.resize(out.len().next_multiple_of(4), 0);
        out
    }

    fn expr(name: &str, data: &[u8]) -> Vec<u8> {
        let mut elem = attr(NFTA_EXPR_NAME, &nul_terminated(name));
        elem.extend(attr(NFTA_EXPR_DATA, data));
        attr(1, &elem)
    }

    fn rule(handle: u64, packets: u64, verdict: u8) -> Vec<u8> {
        let mut exprs = expr(
            "counter",
            &attr(NFTA_COUNTER_PACKETS, &packets.to_be_bytes()),
        );
        exprs.extend(expr("immediate", &[verdict; 4]));
        let mut rule = attr(NFTA_RULE_TABLE, &nul_terminated(TABLE));
        rule.extend(attr(NFTA_RULE_CHAIN, &nul_terminated("input")));
        rule.extend(attr(NFTA_RULE_HANDLE, &handle.to_be_bytes()));
        rule.extend(attr(NFTA_RULE_EXPRESSIONS, &exprs));
        rule.extend(attr(NFTA_RULE_USERDATA, b"\x00\x08inbound\x00"));
        rule
    }

    #[test]
    fn handles_and_counters_do_not_change_a_rules_line() {
        let (line, counter) = rule_line(&rule(4, 0, 0)).unwrap();
        assert!(
            line.starts_with("rule input \"inbound\" counter immediate #"),
            "{line}"
        );
        assert_eq!(counter, Some(("inbound".to_owned(), 0)));
        let (again, counter) = rule_line(&rule(9, 1234, 0)).unwrap();
        assert_eq!(line, again);
        assert_eq!(counter, Some(("inbound".to_owned(), 1234)));
        let (other, _) = rule_line(&rule(4, 0, 1)).unwrap();
        assert_ne!(line, other, "another verdict is another rule");
    }

    #[test]
    fn attributes_that_do_not_fit_are_errors() {
        let mut cut = attr(NFTA_RULE_CHAIN, b"input\0");
        cut.truncate(6);
        assert!(find(&cut, NFTA_RULE_CHAIN).is_err());
        assert_eq!(comment_of(b"\x01\x02ab\x00\x03xy\x00"), "xy");
        assert_eq!(be_uint(&[0, 0, 1, 0]), 256);
    }
}
