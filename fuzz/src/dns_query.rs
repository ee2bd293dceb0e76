//! `dns_query`: a datagram on a network's DNS server, as
//! [`husk_dns::decide`] reads it, with a few names set (a shared alias,
//! both families, one with many addresses, one with none), with and
//! without upstream resolvers; and the answer it would send, which must be
//! a well-formed response to that query that fits a UDP datagram.

use std::net::{IpAddr, Ipv4Addr};

use husk_dns::{Decision, Names, decide};

fn names() -> Names {
    let names = Names::new();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    names.set(
        "c1",
        &["web".into(), "alias".into()],
        &[ip("172.18.0.2"), ip("fd00::2")],
    );
    names.set("c2", &["alias".into()], &[ip("172.18.0.3")]);
    names.set("c3", &["quiet".into()], &[]);
    let many: Vec<IpAddr> = (0..100u8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)))
        .collect();
    names.set("c4", &["many".into()], &many);
    names
}

pub fn run(data: &[u8]) {
    let names = names();
    for upstream in [true, false] {
        match decide(data, &names, upstream) {
            Decision::Answer(answer) => {
                assert!(answer.len() <= 4096, "{} bytes", answer.len());
                assert!(answer.len() >= 12);
                // The client's id, and QR set: never a query of ours.
                assert_eq!(answer[..2], data[..2]);
                assert_eq!(answer[2] & 0x80, 0x80);
            }
            Decision::Forward => assert!(upstream, "forwarded with no upstream"),
            Decision::Drop => {}
        }
    }
}
