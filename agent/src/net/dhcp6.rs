//! DHCPv6 messages (RFC 8415) for one address (IA_NA) per link, as the
//! clouds hand out IPv6 (EC2, Azure and GCE give a VM its address by
//! DHCPv6, with router advertisements carrying only the route), and the
//! lease a Reply gives. Pure functions: [`super::client6`] does the
//! sockets and timers.
//!
//! Messages are built and parsed with dhcproto; a new message starts
//! from a decoded header, because dhcproto's constructors draw a random
//! transaction id from the OS (see [`super::dhcp`]).

use std::net::Ipv6Addr;

use dhcproto::v6::{DhcpOption, IAAddr, IANA, Message, MessageType, ORO, OptionCode, Status};
use dhcproto::{Decodable, Decoder, Encodable};

/// What a Reply gives the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease6 {
    pub address: Ipv6Addr,
    /// Seconds (`u32::MAX`: forever).
    pub preferred: u32,
    pub valid: u32,
    /// When to renew and rebind, seconds from now: the server's, or
    /// RFC 8415's defaults (0.5 and 0.8 of the preferred lifetime).
    pub renew: u32,
    pub rebind: u32,
    pub server_id: Vec<u8>,
    pub dns: Vec<Ipv6Addr>,
}

/// The client's DUID: DUID-LL (type 3) of the link's MAC, stable across
/// reboots without state on disk.
pub fn duid(mac: &[u8; 6]) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(mac);
    d
}

/// A message of `kind` with `xid` and no options, without dhcproto's
/// random id.
fn empty(kind: MessageType, xid: [u8; 3]) -> Message {
    let header = [u8::from(kind), xid[0], xid[1], xid[2]];
    // A 4-byte header with no options always decodes.
    Message::decode(&mut Decoder::new(&header)).unwrap_or_default()
}

fn with_common(kind: MessageType, xid: [u8; 3], duid: &[u8], ia: IANA) -> Message {
    let mut msg = empty(kind, xid);
    let opts = msg.opts_mut();
    opts.insert(DhcpOption::ClientId(duid.to_vec()));
    opts.insert(DhcpOption::ElapsedTime(0));
    opts.insert(DhcpOption::ORO(ORO {
        opts: vec![OptionCode::DomainNameServers, OptionCode::DomainSearchList],
    }));
    opts.insert(DhcpOption::IANA(ia));
    msg
}

fn ia_with(iaid: u32, address: Option<Ipv6Addr>) -> IANA {
    let mut ia = IANA {
        id: iaid,
        t1: 0,
        t2: 0,
        opts: Default::default(),
    };
    if let Some(addr) = address {
        ia.opts.insert(DhcpOption::IAAddr(IAAddr {
            addr,
            preferred_life: 0,
            valid_life: 0,
            opts: Default::default(),
        }));
    }
    ia
}

fn encode(msg: &Message) -> Vec<u8> {
    msg.to_vec().unwrap_or_default()
}

pub fn solicit(xid: [u8; 3], duid: &[u8], iaid: u32) -> Vec<u8> {
    encode(&with_common(
        MessageType::Solicit,
        xid,
        duid,
        ia_with(iaid, None),
    ))
}

/// Request (after an Advertise), Renew (at T1, to the server that gave
/// the lease) or Rebind (at T2, to any server): the address held.
pub fn ask_for(kind: MessageType, xid: [u8; 3], duid: &[u8], iaid: u32, lease: &Lease6) -> Vec<u8> {
    let mut msg = with_common(kind, xid, duid, ia_with(iaid, Some(lease.address)));
    if kind != MessageType::Rebind {
        msg.opts_mut()
            .insert(DhcpOption::ServerId(lease.server_id.clone()));
    }
    encode(&msg)
}

/// A server's Advertise or Reply to our `xid`, for our DUID.
pub fn parse_reply(data: &[u8], xid: [u8; 3], duid: &[u8]) -> Option<(MessageType, Message)> {
    let msg = Message::decode(&mut Decoder::new(data)).ok()?;
    if msg.xid() != xid {
        return None;
    }
    let kind = msg.msg_type();
    if !matches!(kind, MessageType::Advertise | MessageType::Reply) {
        return None;
    }
    match msg.opts().get(OptionCode::ClientId) {
        Some(DhcpOption::ClientId(id)) if id == duid => Some((kind, msg)),
        _ => None,
    }
}

/// The lease of an Advertise or Reply for `iaid`, or why it gives none
/// (a status code, no address, lifetimes that make no sense).
pub fn lease_of(msg: &Message, iaid: u32) -> Result<Lease6, String> {
    let opts = msg.opts();
    if let Some(DhcpOption::StatusCode(code)) = opts.get(OptionCode::StatusCode)
        && code.status != Status::Success
    {
        return Err(format!("server status {:?}: {}", code.status, code.msg));
    }
    let Some(DhcpOption::ServerId(server_id)) = opts.get(OptionCode::ServerId) else {
        return Err("no server identifier".into());
    };
    let ia = opts
        .get_all(OptionCode::IANA)
        .unwrap_or_default()
        .iter()
        .find_map(|o| match o {
            DhcpOption::IANA(ia) if ia.id == iaid => Some(ia),
            _ => None,
        })
        .ok_or("no address for our IA_NA")?;
    if let Some(DhcpOption::StatusCode(code)) = ia.opts.get(OptionCode::StatusCode)
        && code.status != Status::Success
    {
        return Err(format!("IA_NA status {:?}: {}", code.status, code.msg));
    }
    let addr = ia
        .opts
        .get_all(OptionCode::IAAddr)
        .unwrap_or_default()
        .iter()
        .find_map(|o| match o {
            DhcpOption::IAAddr(a) if a.valid_life > 0 => Some(a),
            _ => None,
        })
        .ok_or("no address with a valid lifetime in the IA_NA")?;
    let global = !(addr.addr.is_unspecified()
        || addr.addr.is_loopback()
        || addr.addr.is_multicast()
        || addr.addr.is_unicast_link_local());
    if !global {
        return Err(format!("{} is not an address to take", addr.addr));
    }
    if addr.preferred_life > addr.valid_life {
        return Err(format!(
            "preferred lifetime {} s beyond the valid {} s",
            addr.preferred_life, addr.valid_life
        ));
    }
    // RFC 8415 21.4: T1 and T2 of 0 leave the times to the client; a
    // server's T1 above T2 is ignored.
    let (renew, rebind) = if ia.t1 == 0 || ia.t2 == 0 || ia.t1 > ia.t2 {
        let base = addr.preferred_life.max(1);
        (base / 2, base / 5 * 4)
    } else {
        (ia.t1, ia.t2)
    };
    let dns = match opts.get(OptionCode::DomainNameServers) {
        Some(DhcpOption::DomainNameServers(servers)) => servers.clone(),
        _ => Vec::new(),
    };
    Ok(Lease6 {
        address: addr.addr,
        preferred: addr.preferred_life,
        valid: addr.valid_life,
        renew,
        rebind: rebind.max(renew),
        server_id: server_id.clone(),
        dns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v6::StatusCode;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const XID: [u8; 3] = [1, 2, 3];

    fn reply(ia: IANA, extra: &[DhcpOption]) -> Message {
        let mut msg = empty(MessageType::Reply, XID);
        msg.opts_mut().insert(DhcpOption::ClientId(duid(&MAC)));
        msg.opts_mut()
            .insert(DhcpOption::ServerId(vec![0, 1, 2, 3]));
        msg.opts_mut().insert(DhcpOption::IANA(ia));
        for o in extra {
            msg.opts_mut().insert(o.clone());
        }
        msg
    }

    fn ia(addr: &str, preferred: u32, valid: u32, t1: u32, t2: u32) -> IANA {
        let mut ia = ia_with(7, None);
        ia.t1 = t1;
        ia.t2 = t2;
        ia.opts.insert(DhcpOption::IAAddr(IAAddr {
            addr: addr.parse().unwrap(),
            preferred_life: preferred,
            valid_life: valid,
            opts: Default::default(),
        }));
        ia
    }

    #[test]
    fn a_solicit_asks_for_an_address_with_our_duid() {
        let data = solicit(XID, &duid(&MAC), 7);
        let msg = Message::decode(&mut Decoder::new(&data)).unwrap();
        assert_eq!(msg.msg_type(), MessageType::Solicit);
        assert_eq!(msg.xid(), XID);
        assert_eq!(
            msg.opts().get(OptionCode::ClientId),
            Some(&DhcpOption::ClientId(vec![
                0, 3, 0, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56
            ]))
        );
        let Some(DhcpOption::IANA(ia)) = msg.opts().get(OptionCode::IANA) else {
            panic!("no IA_NA")
        };
        assert_eq!(ia.id, 7);
        assert!(msg.opts().get(OptionCode::ServerId).is_none());
    }

    #[test]
    fn renew_names_the_server_and_rebind_does_not() {
        let lease = lease_of(&reply(ia("2001:db8::5", 100, 200, 50, 80), &[]), 7).unwrap();
        for (kind, server) in [
            (MessageType::Request, true),
            (MessageType::Renew, true),
            (MessageType::Rebind, false),
        ] {
            let data = ask_for(kind, XID, &duid(&MAC), 7, &lease);
            let msg = Message::decode(&mut Decoder::new(&data)).unwrap();
            assert_eq!(msg.msg_type(), kind);
            assert_eq!(
                msg.opts().get(OptionCode::ServerId).is_some(),
                server,
                "{kind:?}"
            );
            let Some(DhcpOption::IANA(ia)) = msg.opts().get(OptionCode::IANA) else {
                panic!("no IA_NA")
            };
            assert!(matches!(
                ia.opts.get(OptionCode::IAAddr),
                Some(DhcpOption::IAAddr(a)) if a.addr == lease.address
            ));
        }
    }

    #[test]
    fn a_reply_gives_the_address_its_lifetimes_times_and_name_servers() {
        let dns: Ipv6Addr = "2001:db8::53".parse().unwrap();
        let msg = reply(
            ia("2001:db8::5", 100, 200, 0, 0),
            &[DhcpOption::DomainNameServers(vec![dns])],
        );
        let data = encode(&msg);
        let (kind, parsed) = parse_reply(&data, XID, &duid(&MAC)).unwrap();
        assert_eq!(kind, MessageType::Reply);
        let lease = lease_of(&parsed, 7).unwrap();
        assert_eq!(lease.address, "2001:db8::5".parse::<Ipv6Addr>().unwrap());
        assert_eq!((lease.preferred, lease.valid), (100, 200));
        // T1 and T2 of 0: half and four fifths of the preferred lifetime.
        assert_eq!((lease.renew, lease.rebind), (50, 80));
        assert_eq!(lease.dns, [dns]);
        assert_eq!(lease.server_id, [0, 1, 2, 3]);
    }

    #[test]
    fn replies_for_others_or_without_a_usable_address_give_nothing() {
        let good = encode(&reply(ia("2001:db8::5", 100, 200, 50, 80), &[]));
        assert!(parse_reply(&good, [9, 9, 9], &duid(&MAC)).is_none());
        assert!(parse_reply(&good, XID, &duid(&[1; 6])).is_none());
        assert!(parse_reply(&good[..3], XID, &duid(&MAC)).is_none());
        for (bad, why) in [
            (ia("fe80::5", 100, 200, 50, 80), "not an address"),
            (ia("ff02::1", 100, 200, 50, 80), "not an address"),
            (ia("2001:db8::5", 300, 200, 50, 80), "preferred lifetime"),
            (ia("2001:db8::5", 0, 0, 50, 80), "no address"),
        ] {
            let err = lease_of(&reply(bad, &[]), 7).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        let mut refused = ia_with(7, None);
        refused.opts.insert(DhcpOption::StatusCode(StatusCode {
            status: Status::NoAddrsAvail,
            msg: "none left".into(),
        }));
        let err = lease_of(&reply(refused, &[]), 7).unwrap_err();
        assert!(err.contains("NoAddrsAvail"), "{err}");
        let err = lease_of(&reply(ia("2001:db8::5", 100, 200, 50, 80), &[]), 8).unwrap_err();
        assert!(err.contains("IA_NA"), "{err}");
    }
}
