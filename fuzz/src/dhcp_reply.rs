//! `dhcp_reply`: a datagram on the DHCP client's socket, as the client
//! reads it ([`husk_agent::net::dhcp::parse_reply`], then
//! [`husk_agent::net::dhcp::lease_of`] for an offer or ack) and what it
//! derives from the lease: its timers, the REQUEST for an offer, the
//! state it publishes.

use husk_agent::net::dhcp;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

pub fn run(data: &[u8]) {
    // The client drops replies to other transactions: take the packet's
    // own xid, or nearly every input would stop there.
    let xid = data
        .get(4..8)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let Some((_kind, message)) = dhcp::parse_reply(data, xid) else {
        return;
    };
    let Some(lease) = dhcp::lease_of(&message) else {
        return;
    };
    assert!(lease.prefix <= 32, "prefix {}", lease.prefix);
    let _ = (
        lease.renew_after(),
        lease.rebind_after(),
        lease.expires_after(),
    );
    let _ = dhcp::request(xid, &MAC, lease.address, Some(lease.server));
    let _ = format!("{}/{}", lease.address, lease.prefix);
    serde_json::to_string(&lease).expect("a lease serialises");
}
