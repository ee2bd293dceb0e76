//! husk-dns on real loopback sockets, with Debian's dnsmasq as its
//! upstream (and as the reference the hostile datagrams are also sent
//! to): every answer is parsed and checked, and every wait is a deadline.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, RecordType};
use husk_dns::{
    DnsError, MAX_IN_FLIGHT, MAX_TCP_CONNECTIONS, Names, Server, ServerConfig, Stats, TCP_IDLE,
    UPSTREAM_TIMEOUT,
};
use husk_testkit::dnsmasq::Dnsmasq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::timeout;

/// What dnsmasq answers for its one name.
const UPSTREAM_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

fn query(name: &str, qtype: RecordType) -> Message {
    let mut msg = Message::new(0x4242, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    msg
}

fn addrs(reply: &Message) -> Vec<IpAddr> {
    reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(A(v4)) => Some(IpAddr::V4(*v4)),
            RData::AAAA(AAAA(v6)) => Some(IpAddr::V6(*v6)),
            _ => None,
        })
        .collect()
}

fn sorted(mut v: Vec<IpAddr>) -> Vec<IpAddr> {
    v.sort();
    v
}

/// Sends raw bytes over UDP and waits for one datagram back.
async fn udp_raw(server: SocketAddr, data: &[u8], wait: Duration) -> Option<Vec<u8>> {
    udp_raw_from(Ipv4Addr::LOCALHOST, server, data, wait).await
}

/// [`udp_raw`] from the client address `from` (one of 127/8).
async fn udp_raw_from(
    from: Ipv4Addr,
    server: SocketAddr,
    data: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((from, 0)).await.unwrap();
    socket.send_to(data, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    match timeout(wait, socket.recv_from(&mut buf)).await {
        Ok(Ok((len, _))) => Some(buf[..len].to_vec()),
        _ => None,
    }
}

/// A query that must be answered (5 s: longer than an upstream timeout).
async fn ask(server: SocketAddr, msg: &Message) -> Message {
    ask_from(Ipv4Addr::LOCALHOST, server, msg).await
}

/// [`ask`] from the client address `from`.
async fn ask_from(from: Ipv4Addr, server: SocketAddr, msg: &Message) -> Message {
    let reply = udp_raw_from(from, server, &msg.to_vec().unwrap(), Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no answer from {server} to {:?}", msg.queries));
    let reply = Message::from_vec(&reply).expect("the reply parses");
    assert_eq!(reply.metadata.id, msg.metadata.id, "the client's id");
    assert_eq!(reply.metadata.message_type, MessageType::Response);
    reply
}

async fn tcp_send(stream: &mut TcpStream, msg: &Message) {
    let bytes = msg.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).await.unwrap();
}

async fn tcp_recv(stream: &mut TcpStream) -> Message {
    let read = async {
        let len = stream.read_u16().await.unwrap();
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.unwrap();
        buf
    };
    let buf = timeout(Duration::from_secs(5), read)
        .await
        .expect("a TCP answer");
    Message::from_vec(&buf).expect("the reply parses")
}

async fn tcp_ask(server: SocketAddr, msg: &Message) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    tcp_send(&mut stream, msg).await;
    tcp_recv(&mut stream).await
}

/// Whether the server closes `stream` before `within` (reading nothing).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 16];
    match timeout(within, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(n)) => panic!("{n} unexpected bytes"),
        Err(_) => false,
    }
}

/// Waits until `check` holds on the server's counters.
async fn stats_until(server: &Server, what: &str, check: impl Fn(&Stats) -> bool) -> Stats {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let stats = server.stats();
        if check(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "{what}: {stats:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn network_names() -> Names {
    let names = Names::new();
    names.set(
        "c1",
        &["web".into(), "www".into()],
        &["172.18.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
    );
    names.set(
        "c2",
        &["v4only".into(), "www".into()],
        &["172.18.0.3".parse().unwrap()],
    );
    let many: Vec<IpAddr> = (1..=100u8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(10, 9, 0, i)))
        .collect();
    names.set("c3", &["many".into()], &many);
    names
}

async fn husk(upstream: Vec<SocketAddr>, names: Names) -> (Server, SocketAddr) {
    let server = Server::start(
        ServerConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            clients: vec![("127.0.0.0".parse().unwrap(), 8)],
            upstream,
            internal: false,
        },
        names,
    )
    .await
    .unwrap();
    let addr = server.local_addrs()[0];
    assert_ne!(addr.port(), 0);
    (server, addr)
}

#[tokio::test]
async fn the_networks_names_over_udp_and_tcp() {
    let (server, addr) = husk(vec![], network_names()).await;

    let reply = ask(addr, &query("WEB.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.authoritative);
    assert_eq!(addrs(&reply), ["172.18.0.2".parse::<IpAddr>().unwrap()]);
    let reply = ask(addr, &query("web.", RecordType::AAAA)).await;
    assert_eq!(addrs(&reply), ["fd00::2".parse::<IpAddr>().unwrap()]);
    // A shared alias: both owners, in turns.
    let first = addrs(&ask(addr, &query("www.", RecordType::A)).await);
    let second = addrs(&ask(addr, &query("www.", RecordType::A)).await);
    assert_eq!(
        sorted(first.clone()),
        [
            "172.18.0.2".parse::<IpAddr>().unwrap(),
            "172.18.0.3".parse().unwrap()
        ]
    );
    assert_ne!(first[0], second[0]);
    // Known, but no such record: NOERROR, empty.
    for (name, qtype) in [("v4only.", RecordType::AAAA), ("web.", RecordType::MX)] {
        let reply = ask(addr, &query(name, qtype)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.answers.is_empty());
    }
    let reply = ask(addr, &query("3.0.18.172.in-addr.arpa.", RecordType::PTR)).await;
    assert_eq!(
        reply.answers[0].data,
        RData::PTR(PTR(Name::from_ascii("v4only.").unwrap()))
    );
    // 100 addresses: truncated over UDP, whole over TCP.
    let reply = ask(addr, &query("many.", RecordType::A)).await;
    assert!(reply.metadata.truncation);
    let reply = tcp_ask(addr, &query("many.", RecordType::A)).await;
    assert!(!reply.metadata.truncation);
    assert_eq!(addrs(&reply).len(), 100);
    // Several queries on one connection.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    for name in ["web.", "v4only."] {
        tcp_send(&mut stream, &query(name, RecordType::A)).await;
        assert_eq!(addrs(&tcp_recv(&mut stream).await).len(), 1);
    }
    assert_eq!(server.stats().answered, 11);
    server.stop().await;
}

#[tokio::test]
async fn names_change_while_it_serves() {
    let names = Names::new();
    let (server, addr) = husk(vec![], names.clone()).await;
    let refused = ask(addr, &query("late.", RecordType::A)).await;
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    names.set("c9", &["late".into()], &["172.18.0.9".parse().unwrap()]);
    assert_eq!(
        addrs(&ask(addr, &query("late.", RecordType::A)).await),
        ["172.18.0.9".parse::<IpAddr>().unwrap()]
    );
    names.remove("c9");
    let refused = ask(addr, &query("late.", RecordType::A)).await;
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    let stats = server.stats();
    assert_eq!((stats.answered, stats.refused), (1, 2));
}

#[tokio::test]
async fn other_names_are_forwarded_to_dnsmasq() {
    let dnsmasq = start_dnsmasq();
    let (server, addr) = husk(vec![dnsmasq.addr], network_names()).await;
    let mut msg = query("UPSTREAM.test.", RecordType::A);
    msg.metadata.id = 0x7777;
    let reply = ask(addr, &msg).await;
    assert_eq!(addrs(&reply), [IpAddr::V4(UPSTREAM_ADDR)]);
    assert_eq!(reply.queries, msg.queries);
    // Over TCP, forwarded over TCP (dnsmasq listens on both).
    let reply = tcp_ask(addr, &query("upstream.test.", RecordType::A)).await;
    assert_eq!(addrs(&reply), [IpAddr::V4(UPSTREAM_ADDR)]);
    assert_eq!(reply.metadata.id, 0x4242);
    // dnsmasq's own answer for what it does not know is relayed as is.
    let reply = ask(addr, &query("nowhere.test.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    // The network's names stay the network's.
    assert_eq!(
        addrs(&ask(addr, &query("web.", RecordType::A)).await).len(),
        1
    );
    let stats = server.stats();
    assert_eq!((stats.forwarded, stats.answered), (3, 1), "{stats:?}");
}

#[tokio::test]
async fn set_upstream_turns_an_internal_network_into_a_forwarding_one() {
    let dnsmasq = start_dnsmasq();
    let (server, addr) = husk(vec![], network_names()).await;
    let reply = ask(addr, &query("upstream.test.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    assert!(!reply.metadata.recursion_available);
    server.set_upstream(vec![dnsmasq.addr]);
    let reply = ask(addr, &query("upstream.test.", RecordType::A)).await;
    assert_eq!(addrs(&reply), [IpAddr::V4(UPSTREAM_ADDR)]);
    server.set_upstream(vec![]);
    let reply = ask(addr, &query("upstream.test.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
}

/// A TCP query from the client address `from`.
async fn tcp_ask_from(from: Ipv4Addr, server: SocketAddr, msg: &Message) -> Message {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    tcp_send(&mut stream, msg).await;
    tcp_recv(&mut stream).await
}

/// What the second resolver answers for upstream.test.
const OWN_UPSTREAM_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 8);

#[tokio::test]
async fn a_client_with_upstream_servers_of_its_own_is_forwarded_there_alone() {
    let network = start_dnsmasq();
    let own = Dnsmasq::start(Ipv4Addr::LOCALHOST, 0, "upstream.test", OWN_UPSTREAM_ADDR);
    let names = network_names();
    let (server, addr) = husk(vec![network.addr], names.clone()).await;
    let (client, other) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::LOCALHOST);
    names
        .set_upstream_for(IpAddr::V4(client), &[own.addr])
        .unwrap();
    let question = query("upstream.test.", RecordType::A);
    assert_eq!(
        addrs(&ask_from(client, addr, &question).await),
        [IpAddr::V4(OWN_UPSTREAM_ADDR)]
    );
    assert_eq!(
        addrs(&tcp_ask_from(client, addr, &question).await),
        [IpAddr::V4(OWN_UPSTREAM_ADDR)]
    );
    assert_eq!(
        addrs(&ask_from(other, addr, &question).await),
        [IpAddr::V4(UPSTREAM_ADDR)]
    );
    // The network's names stay the network's, for it too.
    assert_eq!(
        addrs(&ask_from(client, addr, &query("web.", RecordType::A)).await),
        ["172.18.0.2".parse::<IpAddr>().unwrap()]
    );
    // Its servers stand when the network has none (a machine without
    // name servers): the others are refused.
    server.set_upstream(vec![]);
    assert_eq!(
        addrs(&ask_from(client, addr, &question).await),
        [IpAddr::V4(OWN_UPSTREAM_ADDR)]
    );
    let refused = ask_from(other, addr, &question).await;
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    // Never the server itself, theirs neither.
    names
        .set_upstream_for(IpAddr::V4(client), &[addr, own.addr])
        .unwrap();
    assert_eq!(
        addrs(&ask_from(client, addr, &question).await),
        [IpAddr::V4(OWN_UPSTREAM_ADDR)]
    );
    // Gone with the client: the network's again.
    server.set_upstream(vec![network.addr]);
    names.forget_client(IpAddr::V4(client));
    assert_eq!(
        addrs(&ask_from(client, addr, &question).await),
        [IpAddr::V4(UPSTREAM_ADDR)]
    );
    let stats = server.stats();
    assert_eq!(
        (stats.forwarded, stats.refused, stats.answered),
        (6, 1, 1),
        "{stats:?}"
    );
}

#[tokio::test]
async fn an_internal_network_forwards_nothing_a_clients_servers_included() {
    let dnsmasq = start_dnsmasq();
    let names = network_names();
    let server = Server::start(
        ServerConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            clients: vec![("127.0.0.0".parse().unwrap(), 8)],
            upstream: vec![dnsmasq.addr],
            internal: true,
        },
        names.clone(),
    )
    .await
    .unwrap();
    let addr = server.local_addrs()[0];
    let client = Ipv4Addr::new(127, 0, 0, 2);
    names
        .set_upstream_for(IpAddr::V4(client), &[dnsmasq.addr])
        .unwrap();
    let question = query("upstream.test.", RecordType::A);
    for from in [client, Ipv4Addr::LOCALHOST] {
        let reply = ask_from(from, addr, &question).await;
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::Refused,
            "{from}"
        );
        let reply = tcp_ask_from(from, addr, &question).await;
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::Refused,
            "{from}"
        );
    }
    server.set_upstream(vec![dnsmasq.addr]);
    let reply = ask_from(client, addr, &question).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    assert_eq!(
        addrs(&ask_from(client, addr, &query("web.", RecordType::A)).await).len(),
        1
    );
    let stats = server.stats();
    assert_eq!((stats.forwarded, stats.refused), (0, 5), "{stats:?}");
}

#[tokio::test]
async fn the_server_is_never_its_own_upstream() {
    let (server, addr) = husk(vec![], network_names()).await;
    // Forwarding to itself would loop: it is left out, and the network
    // is internal.
    server.set_upstream(vec![addr]);
    let reply = ask(addr, &query("upstream.test.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    let dnsmasq = start_dnsmasq();
    server.set_upstream(vec![addr, dnsmasq.addr]);
    let reply = ask(addr, &query("upstream.test.", RecordType::A)).await;
    assert_eq!(addrs(&reply), [IpAddr::V4(UPSTREAM_ADDR)]);
    let stats = server.stats();
    assert_eq!((stats.refused, stats.forwarded), (1, 1), "{stats:?}");
}

#[tokio::test]
async fn a_dead_upstream_is_passed_over_then_servfail() {
    let dnsmasq = start_dnsmasq();
    // Bound and never read: a resolver that never answers.
    let black_hole = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dead = black_hole.local_addr().unwrap();
    let (server, addr) = husk(vec![dead, dnsmasq.addr], network_names()).await;
    let started = Instant::now();
    let reply = ask(addr, &query("upstream.test.", RecordType::A)).await;
    assert_eq!(addrs(&reply), [IpAddr::V4(UPSTREAM_ADDR)]);
    assert!(started.elapsed() >= UPSTREAM_TIMEOUT, "the dead one first");

    server.set_upstream(vec![dead]);
    let reply = ask(addr, &query("upstream.test.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    // Over TCP: a resolver that accepts and never answers.
    let mute = TcpListener::bind("127.0.0.1:0").await.unwrap();
    server.set_upstream(vec![mute.local_addr().unwrap()]);
    let reply = tcp_ask(addr, &query("upstream.test.", RecordType::A)).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    let stats = server.stats();
    assert_eq!(
        (stats.forwarded, stats.upstream_failures),
        (1, 2),
        "{stats:?}"
    );
}

#[tokio::test]
async fn queries_from_outside_the_clients_are_dropped() {
    let server = Server::start(
        ServerConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            clients: vec![
                ("10.0.0.0".parse().unwrap(), 8),
                ("fd00::".parse().unwrap(), 8),
            ],
            upstream: vec![],
            internal: false,
        },
        network_names(),
    )
    .await
    .unwrap();
    let addr = server.local_addrs()[0];
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(&query("web.", RecordType::A).to_vec().unwrap(), addr)
        .await
        .unwrap();
    stats_until(&server, "the query is counted", |s| s.not_client == 1).await;
    let mut buf = [0u8; 512];
    assert!(
        timeout(Duration::from_millis(300), socket.recv_from(&mut buf))
            .await
            .is_err(),
        "no answer"
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut stream, Duration::from_secs(2)).await);
    let stats = stats_until(&server, "the connection is counted", |s| s.not_client == 2).await;
    assert_eq!(stats.answered, 0);
}

/// A datagram no server should choke on, and what husk-dns does with it.
struct Hostile {
    what: &'static str,
    data: Vec<u8>,
    /// `None`: no answer at all.
    husk: Option<ResponseCode>,
}

fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&flags.to_be_bytes());
    for count in counts {
        out.extend_from_slice(&count.to_be_bytes());
    }
    out
}

fn hostile() -> Vec<Hostile> {
    let question = |name: &[u8]| {
        let mut q = name.to_vec();
        q.extend_from_slice(&[0, 1, 0, 1]);
        q
    };
    let web = question(b"\x03web\x00");
    let with = |mut head: Vec<u8>, body: &[u8]| {
        head.extend_from_slice(body);
        head
    };
    let mut huge = Vec::new();
    for _ in 0..5 {
        huge.push(63);
        huge.extend_from_slice(&[b'a'; 63]);
    }
    huge.push(0);
    let mut answer = query("web.", RecordType::A);
    answer.metadata.message_type = MessageType::Response;
    let mut tiny = query("many.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(1);
    tiny.set_edns(edns);
    vec![
        Hostile {
            what: "empty",
            data: vec![],
            husk: None,
        },
        Hostile {
            what: "truncated header (5 bytes)",
            data: vec![0x12, 0x34, 0x01, 0x00, 0x00],
            husk: None,
        },
        Hostile {
            what: "response (QR=1) about a known name",
            data: answer.to_vec().unwrap(),
            husk: None,
        },
        Hostile {
            what: "bare response header",
            data: header(1, 0x8180, [0; 4]),
            husk: None,
        },
        Hostile {
            what: "compression pointer to itself",
            data: with(header(2, 0x0100, [1, 0, 0, 0]), &[0xc0, 12, 0, 1, 0, 1]),
            husk: Some(ResponseCode::FormErr),
        },
        Hostile {
            what: "two pointers at each other",
            data: with(
                header(3, 0x0100, [1, 0, 0, 0]),
                &[0xc0, 14, 0xc0, 12, 0, 1, 0, 1],
            ),
            husk: Some(ResponseCode::FormErr),
        },
        Hostile {
            what: "QDCOUNT 0",
            data: header(4, 0x0100, [0; 4]),
            husk: Some(ResponseCode::FormErr),
        },
        Hostile {
            what: "QDCOUNT 2, one question",
            data: with(header(5, 0x0100, [2, 0, 0, 0]), &web),
            husk: Some(ResponseCode::FormErr),
        },
        Hostile {
            what: "QDCOUNT 65535",
            data: with(header(6, 0x0100, [65535, 0, 0, 0]), &web),
            husk: Some(ResponseCode::FormErr),
        },
        Hostile {
            what: "opcode NOTIFY",
            data: with(header(7, 4 << 11, [1, 0, 0, 0]), &web),
            husk: Some(ResponseCode::NotImp),
        },
        Hostile {
            what: "opcode UPDATE",
            data: with(header(8, 5 << 11, [1, 0, 0, 0]), &web),
            husk: Some(ResponseCode::NotImp),
        },
        Hostile {
            what: "opcode 15",
            data: with(header(9, 15 << 11, [1, 0, 0, 0]), &web),
            husk: Some(ResponseCode::NotImp),
        },
        Hostile {
            what: "name of 320 bytes",
            data: with(header(10, 0x0100, [1, 0, 0, 0]), &question(&huge)),
            husk: Some(ResponseCode::FormErr),
        },
        Hostile {
            what: "question cut short",
            data: with(header(11, 0x0100, [1, 0, 0, 0]), b"\x03web\x00\x00"),
            husk: Some(ResponseCode::FormErr),
        },
        Hostile {
            what: "ARCOUNT 65535, no records",
            data: with(header(12, 0x0100, [1, 0, 0, 65535]), &web),
            husk: Some(ResponseCode::FormErr),
        },
        Hostile {
            what: "EDNS payload 1, 100 addresses",
            data: tiny.to_vec().unwrap(),
            husk: Some(ResponseCode::NoError),
        },
    ]
}

fn rcode(reply: &Option<Vec<u8>>) -> String {
    match reply {
        None => "no answer".into(),
        Some(bytes) => match Message::from_vec(bytes) {
            Ok(msg) => format!(
                "{}{}",
                msg.metadata.response_code,
                if msg.metadata.truncation { " TC" } else { "" }
            ),
            // dnsmasq echoes a question it cannot read: its rcode, then.
            Err(_) if bytes.len() >= 4 => format!(
                "{} (question unparseable)",
                ResponseCode::from_low(bytes[3] & 0x0f)
            ),
            Err(e) => format!("unparseable ({e})"),
        },
    }
}

#[tokio::test]
async fn hostile_datagrams_leave_husk_and_dnsmasq_serving() {
    let mut dnsmasq = start_dnsmasq();
    let (server, addr) = husk(vec![dnsmasq.addr], network_names()).await;
    let cases = hostile();
    // All at once (each from its own socket), then every answer or its
    // absence within one deadline.
    let wait = Duration::from_millis(800);
    let mut pending = Vec::new();
    for case in &cases {
        for target in [addr, dnsmasq.addr] {
            let data = case.data.clone();
            pending.push(tokio::spawn(
                async move { udp_raw(target, &data, wait).await },
            ));
        }
    }
    let mut replies = Vec::new();
    for task in pending {
        replies.push(task.await.unwrap());
    }
    let mut failures = Vec::new();
    eprintln!("{:<40} {:<24} dnsmasq", "datagram", "husk-dns");
    for (case, pair) in cases.iter().zip(replies.chunks(2)) {
        let (ours, theirs) = (&pair[0], &pair[1]);
        eprintln!("{:<40} {:<24} {}", case.what, rcode(ours), rcode(theirs));
        let got = ours
            .as_ref()
            .map(|bytes| Message::from_vec(bytes).expect("our replies parse"));
        if let Some(reply) = &got {
            assert!(bytes_fit(ours.as_ref().unwrap()), "{}", case.what);
            assert_eq!(reply.metadata.message_type, MessageType::Response);
            assert_eq!(
                reply.metadata.id,
                u16::from_be_bytes([case.data[0], case.data[1]]),
                "{}",
                case.what
            );
        }
        if got.as_ref().map(|r| r.metadata.response_code) != case.husk {
            failures.push(case.what);
        }
    }
    assert!(failures.is_empty(), "unexpected answers: {failures:?}");
    // Both still serve.
    assert!(dnsmasq.alive(), "dnsmasq died");
    assert_eq!(
        addrs(&ask(dnsmasq.addr, &query("upstream.test.", RecordType::A)).await),
        [IpAddr::V4(UPSTREAM_ADDR)]
    );
    assert_eq!(
        addrs(&ask(addr, &query("upstream.test.", RecordType::A)).await),
        [IpAddr::V4(UPSTREAM_ADDR)]
    );
    assert_eq!(
        addrs(&ask(addr, &query("web.", RecordType::A)).await).len(),
        1
    );
    let stats = server.stats();
    assert_eq!(stats.dropped, 4, "{stats:?}");
    assert_eq!(stats.rejected, 11, "{stats:?}");

    // The same over TCP: each hostile message on its own connection gets
    // its answer or the connection closed, and the server goes on.
    for case in cases.iter().filter(|c| !c.data.is_empty()) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut framed = (case.data.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&case.data);
        stream.write_all(&framed).await.unwrap();
        match case.husk {
            None => assert!(closed_within(&mut stream, Duration::from_secs(2)).await),
            Some(code) => {
                let reply = tcp_recv(&mut stream).await;
                // The tiny EDNS payload does not bind TCP: everything.
                assert_eq!(reply.metadata.response_code, code, "{}", case.what);
            }
        }
    }
    assert_eq!(
        addrs(&tcp_ask(addr, &query("many.", RecordType::A)).await).len(),
        100
    );
}

fn bytes_fit(bytes: &[u8]) -> bool {
    bytes.len() <= 512
}

#[tokio::test]
async fn idle_and_slow_tcp_clients_are_closed() {
    let (server, addr) = husk(vec![], network_names()).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    // Half a length, then nothing.
    slow.write_all(&[0]).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    // A length and part of the message.
    partial.write_all(&[0, 40, 0x12, 0x34]).await.unwrap();
    // Meanwhile, UDP and other TCP clients are served.
    assert_eq!(
        addrs(&ask(addr, &query("web.", RecordType::A)).await).len(),
        1
    );
    assert_eq!(
        addrs(&tcp_ask(addr, &query("web.", RecordType::A)).await).len(),
        1
    );
    let started = Instant::now();
    let limit = TCP_IDLE + Duration::from_secs(2);
    assert!(closed_within(&mut idle, limit).await, "idle");
    assert!(closed_within(&mut slow, limit).await, "slow");
    assert!(closed_within(&mut partial, limit).await, "partial");
    assert!(started.elapsed() < limit);
    drop(server);
}

#[tokio::test]
async fn tcp_connections_are_bounded_and_the_server_keeps_answering() {
    let (server, addr) = husk(vec![], network_names()).await;
    let extra = 8;
    let mut streams = Vec::new();
    for _ in 0..MAX_TCP_CONNECTIONS + extra {
        streams.push(TcpStream::connect(addr).await.unwrap());
    }
    stats_until(&server, "the excess is refused", |s| {
        s.overloaded == extra as u64
    })
    .await;
    assert_eq!(
        addrs(&ask(addr, &query("web.", RecordType::A)).await).len(),
        1
    );
    drop(streams);
    // Their slots come back as the server sees them close.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        tcp_send(&mut stream, &query("web.", RecordType::A)).await;
        let mut len = [0u8; 2];
        if let Ok(Ok(_)) = timeout(Duration::from_secs(1), stream.read_exact(&mut len)).await {
            break;
        }
        assert!(Instant::now() < deadline, "no slot came back");
    }
}

#[tokio::test]
async fn forwards_in_flight_are_bounded() {
    let black_hole = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (server, addr) = husk(vec![black_hole.local_addr().unwrap()], network_names()).await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let extra = 50;
    for i in 0..MAX_IN_FLIGHT + extra {
        let mut msg = query(&format!("n{i}.upstream.test."), RecordType::A);
        msg.metadata.id = i as u16;
        client.send_to(&msg.to_vec().unwrap(), addr).await.unwrap();
    }
    stats_until(&server, "the excess is dropped", |s| {
        s.overloaded == extra as u64
    })
    .await;
    // The network's own names do not wait for the upstream.
    let started = Instant::now();
    assert_eq!(
        addrs(&ask(addr, &query("web.", RecordType::A)).await).len(),
        1
    );
    assert!(started.elapsed() < UPSTREAM_TIMEOUT);
    // Every forward ends in a SERVFAIL to the client, none is lost.
    let mut buf = vec![0u8; 65535];
    let mut servfails = 0;
    while servfails < MAX_IN_FLIGHT {
        let (len, _) = timeout(Duration::from_secs(10), client.recv_from(&mut buf))
            .await
            .expect("every forward answered")
            .unwrap();
        let reply = Message::from_vec(&buf[..len]).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
        servfails += 1;
    }
    assert_eq!(server.stats().upstream_failures, MAX_IN_FLIGHT as u64);
}

#[tokio::test]
async fn start_names_what_it_cannot_bind_and_stop_lets_go() {
    let taken = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let taken_addr = taken.local_addr().unwrap();
    let error = Server::start(
        ServerConfig {
            listen: vec![taken_addr],
            clients: vec![],
            upstream: vec![],
            internal: false,
        },
        Names::new(),
    )
    .await
    .err()
    .expect("the address is taken");
    assert!(matches!(error, DnsError::Bind { addr, .. } if addr == taken_addr));
    assert!(
        error.to_string().contains(&taken_addr.to_string()),
        "{error}"
    );
    assert!(std::error::Error::source(&error).is_some());

    let bad = Server::start(
        ServerConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            clients: vec![("10.0.0.0".parse().unwrap(), 33)],
            upstream: vec![],
            internal: false,
        },
        Names::new(),
    )
    .await;
    assert!(matches!(
        bad,
        Err(DnsError::ClientNetwork { prefix: 33, .. })
    ));

    // Two addresses, one port each for UDP and TCP.
    let server = Server::start(
        ServerConfig {
            listen: vec![
                "127.0.0.1:0".parse().unwrap(),
                "127.0.0.2:0".parse().unwrap(),
            ],
            clients: vec![("127.0.0.0".parse().unwrap(), 8)],
            upstream: vec![],
            internal: false,
        },
        network_names(),
    )
    .await
    .unwrap();
    let addrs_bound = server.local_addrs();
    assert_eq!(addrs_bound.len(), 2);
    for &addr in &addrs_bound {
        assert_eq!(
            addrs(&ask(addr, &query("web.", RecordType::A)).await).len(),
            1
        );
        assert_eq!(
            addrs(&tcp_ask(addr, &query("web.", RecordType::A)).await).len(),
            1
        );
    }
    server.stop().await;
    for addr in addrs_bound {
        UdpSocket::bind(addr).await.expect("UDP let go");
        TcpListener::bind(addr).await.expect("TCP let go");
    }
}

/// dnsmasq on 127.0.0.1 and a free port, answering upstream.test.
fn start_dnsmasq() -> Dnsmasq {
    Dnsmasq::start(Ipv4Addr::LOCALHOST, 0, "upstream.test", UPSTREAM_ADDR)
}

#[tokio::test]
async fn port_0_is_one_port_on_every_address_and_both_transports() {
    let config = ServerConfig {
        listen: vec![
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.2:0".parse().unwrap(),
        ],
        clients: vec![(IpAddr::V4(Ipv4Addr::LOCALHOST), 8)],
        upstream: vec![],
        internal: false,
    };
    let server = Server::start(config, network_names()).await.unwrap();
    let bound = server.local_addrs();
    assert_eq!(bound.len(), 2, "{bound:?}");
    assert_ne!(bound[0].port(), 0);
    assert_eq!(bound[0].port(), bound[1].port(), "{bound:?}");
    for addr in &bound {
        let reply = ask(*addr, &query("web.", RecordType::A)).await;
        assert_eq!(addrs(&reply).len(), 1, "{addr}: {reply:?}");
        let mut stream = TcpStream::connect(addr).await.unwrap();
        tcp_send(&mut stream, &query("web.", RecordType::A)).await;
        let mut len = [0u8; 2];
        timeout(Duration::from_secs(5), stream.read_exact(&mut len))
            .await
            .unwrap()
            .unwrap();
    }
    server.stop().await;
}
