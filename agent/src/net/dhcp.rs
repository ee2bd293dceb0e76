//! DHCPv4 messages (RFC 2131) with dhcproto, and the lease they give. Pure
//! functions: the client in [`super::client`] does the sockets and timers.

use std::net::Ipv4Addr;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder};
use serde::{Deserialize, Serialize};

/// What an ACK gives the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// Option 42.
    #[serde(default)]
    pub ntp: Vec<Ipv4Addr>,
    pub mtu: Option<u16>,
    pub server: Ipv4Addr,
    /// Seconds.
    pub lease_time: u32,
    pub renew_time: u32,
    pub rebind_time: u32,
}

impl Lease {
    pub fn renew_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.renew_time))
    }
    pub fn rebind_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.rebind_time))
    }
    pub fn expires_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.lease_time))
    }
}

/// DHCP option codes this client writes.
const OPT_REQUESTED_IP: u8 = 50;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_PARAMETERS: u8 = 55;
const OPT_END: u8 = 255;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// A BOOTREQUEST, written here: dhcproto's constructors draw a random
/// transaction id from the OS (`Message::new_with_id` too, through
/// `Default`), and that blocks until the kernel's RNG is seeded — long
/// after boot on a VM without a hardware RNG, stalling the agent's one
/// thread. Replies are parsed with dhcproto ([`parse_reply`]).
fn request_packet(
    xid: u32,
    mac: &[u8; 6],
    kind: MessageType,
    ciaddr: Ipv4Addr,
    options: &[(u8, &[u8])],
) -> Vec<u8> {
    let mut p = Vec::with_capacity(300);
    p.extend_from_slice(&[1, 1, 6, 0]); // BOOTREQUEST, Ethernet, hlen 6, hops
    p.extend_from_slice(&xid.to_be_bytes());
    p.extend_from_slice(&[0, 0]); // secs
    // Servers answer by broadcast: the interface has no address yet.
    p.extend_from_slice(&0x8000u16.to_be_bytes());
    p.extend_from_slice(&ciaddr.octets());
    p.extend_from_slice(&[0; 12]); // yiaddr, siaddr, giaddr
    p.extend_from_slice(mac);
    p.extend_from_slice(&[0; 10 + 64 + 128]); // chaddr padding, sname, file
    p.extend_from_slice(&MAGIC_COOKIE);
    p.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, u8::from(kind)]);
    for (code, value) in options {
        p.push(*code);
        p.push(value.len() as u8);
        p.extend_from_slice(value);
    }
    let parameters = [
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::NtpServers,
        OptionCode::InterfaceMtu,
        OptionCode::AddressLeaseTime,
        OptionCode::Renewal,
        OptionCode::Rebinding,
    ]
    .map(u8::from);
    p.push(OPT_PARAMETERS);
    p.push(parameters.len() as u8);
    p.extend_from_slice(&parameters);
    p.push(OPT_END);
    // BOOTP's minimum message size.
    p.resize(p.len().max(300), 0);
    p
}

/// DISCOVER; `hint`: the address of a lease still held (the carrier
/// came back), asked for again (RFC 2131 4.4.1) so that the machine
/// keeps its address and its connections.
pub fn discover(xid: u32, mac: &[u8; 6], hint: Option<Ipv4Addr>) -> Vec<u8> {
    match hint {
        Some(address) => request_packet(
            xid,
            mac,
            MessageType::Discover,
            Ipv4Addr::UNSPECIFIED,
            &[(OPT_REQUESTED_IP, &address.octets())],
        ),
        None => request_packet(xid, mac, MessageType::Discover, Ipv4Addr::UNSPECIFIED, &[]),
    }
}

/// REQUEST for `address`: after an OFFER (with the server's id), or to
/// renew/rebind a lease (without it, `ciaddr` set).
pub fn request(xid: u32, mac: &[u8; 6], address: Ipv4Addr, server: Option<Ipv4Addr>) -> Vec<u8> {
    match server {
        Some(server) => request_packet(
            xid,
            mac,
            MessageType::Request,
            Ipv4Addr::UNSPECIFIED,
            &[
                (OPT_REQUESTED_IP, &address.octets()),
                (OPT_SERVER_ID, &server.octets()),
            ],
        ),
        None => request_packet(xid, mac, MessageType::Request, address, &[]),
    }
}

/// A server's answer to our `xid`: (type, message).
pub fn parse_reply(data: &[u8], xid: u32) -> Option<(MessageType, Message)> {
    let msg = Message::decode(&mut Decoder::new(data)).ok()?;
    if msg.opcode() != Opcode::BootReply || msg.xid() != xid {
        return None;
    }
    let kind = msg.opts().msg_type()?;
    Some((kind, msg))
}

/// The lease of an OFFER or ACK.
pub fn lease_of(msg: &Message) -> Option<Lease> {
    let opts = msg.opts();
    let address = msg.yiaddr();
    if address.is_unspecified() {
        return None;
    }
    let server = match opts.get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(ip)) => *ip,
        _ => msg.siaddr(),
    };
    let prefix = match opts.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => u32::from(*mask).count_ones() as u8,
        _ => 24,
    };
    let router = match opts.get(OptionCode::Router) {
        Some(DhcpOption::Router(ips)) => ips.first().copied(),
        _ => None,
    };
    let dns = match opts.get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(ips)) => ips.clone(),
        _ => Vec::new(),
    };
    let ntp = match opts.get(OptionCode::NtpServers) {
        Some(DhcpOption::NtpServers(ips)) => ips.clone(),
        _ => Vec::new(),
    };
    let mtu = match opts.get(OptionCode::InterfaceMtu) {
        Some(DhcpOption::InterfaceMtu(mtu)) => Some(*mtu),
        _ => None,
    };
    let lease_time = match opts.get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => *t,
        _ => 3600,
    };
    let renew_time = match opts.get(OptionCode::Renewal) {
        Some(DhcpOption::Renewal(t)) => *t,
        _ => lease_time / 2,
    };
    let rebind_time = match opts.get(OptionCode::Rebinding) {
        Some(DhcpOption::Rebinding(t)) => *t,
        _ => lease_time / 8 * 7,
    };
    Some(Lease {
        address,
        prefix,
        router,
        dns,
        ntp,
        mtu,
        server,
        lease_time,
        renew_time,
        rebind_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::Encodable;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    /// What a server would answer: an ACK with the usual options.
    fn ack(xid: u32) -> Vec<u8> {
        let mut msg = Message::default();
        msg.set_opcode(Opcode::BootReply)
            .set_xid(xid)
            .set_yiaddr(Ipv4Addr::new(10, 0, 2, 15))
            .set_chaddr(&MAC);
        let o = msg.opts_mut();
        o.insert(DhcpOption::MessageType(MessageType::Ack));
        o.insert(DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 0, 2, 2)));
        o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
        o.insert(DhcpOption::Router(vec![Ipv4Addr::new(10, 0, 2, 2)]));
        o.insert(DhcpOption::DomainNameServer(vec![Ipv4Addr::new(
            10, 0, 2, 3,
        )]));
        o.insert(DhcpOption::NtpServers(vec![
            Ipv4Addr::new(10, 0, 2, 4),
            Ipv4Addr::new(169, 254, 169, 123),
        ]));
        o.insert(DhcpOption::AddressLeaseTime(86400));
        msg.to_vec().unwrap()
    }

    #[test]
    fn requests_ask_for_broadcast_and_the_options_we_use() {
        let data = discover(7, &MAC, None);
        let msg = Message::decode(&mut Decoder::new(&data)).unwrap();
        assert_eq!(msg.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(msg.opts().get(OptionCode::RequestedIpAddress), None);
        assert!(msg.flags().broadcast());
        assert_eq!(msg.chaddr(), &MAC);
        let Some(DhcpOption::ParameterRequestList(asked)) =
            msg.opts().get(OptionCode::ParameterRequestList)
        else {
            panic!("no parameter request list")
        };
        assert!(asked.contains(&OptionCode::NtpServers), "{asked:?}");
        assert!(asked.contains(&OptionCode::DomainNameServer), "{asked:?}");
        let data = request(
            7,
            &MAC,
            Ipv4Addr::new(10, 0, 2, 15),
            Some(Ipv4Addr::new(10, 0, 2, 2)),
        );
        let msg = Message::decode(&mut Decoder::new(&data)).unwrap();
        assert_eq!(
            msg.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 0, 2, 15)))
        );
        let renew = request(8, &MAC, Ipv4Addr::new(10, 0, 2, 15), None);
        let msg = Message::decode(&mut Decoder::new(&renew)).unwrap();
        assert_eq!(msg.ciaddr(), Ipv4Addr::new(10, 0, 2, 15));
    }

    #[test]
    fn a_discover_after_the_carrier_came_back_asks_for_the_address_held() {
        let held = Ipv4Addr::new(10, 77, 0, 23);
        let data = discover(9, &MAC, Some(held));
        let msg = Message::decode(&mut Decoder::new(&data)).unwrap();
        assert_eq!(msg.opts().msg_type(), Some(MessageType::Discover));
        assert_eq!(msg.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            msg.opts().get(OptionCode::RequestedIpAddress),
            Some(&DhcpOption::RequestedIpAddress(held))
        );
    }

    #[test]
    fn an_ack_gives_the_lease_and_other_xids_are_ignored() {
        let data = ack(42);
        assert!(parse_reply(&data, 41).is_none());
        let (kind, msg) = parse_reply(&data, 42).unwrap();
        assert_eq!(kind, MessageType::Ack);
        let lease = lease_of(&msg).unwrap();
        assert_eq!(lease.address, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(lease.prefix, 24);
        assert_eq!(lease.router, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(lease.dns, [Ipv4Addr::new(10, 0, 2, 3)]);
        assert_eq!(
            lease.ntp,
            [
                Ipv4Addr::new(10, 0, 2, 4),
                Ipv4Addr::new(169, 254, 169, 123)
            ]
        );
        assert_eq!((lease.renew_time, lease.rebind_time), (43200, 75600));
        assert!(parse_reply(b"garbage", 42).is_none());
    }
}
