//! What to do with one query: the pure part of the server, with no
//! socket and no clock, so that unit tests and the fuzz target reach every
//! branch a datagram can take.

use std::net::IpAddr;

use hickory_proto::op::{
    Edns, Header, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::names::Names;

/// The TTL of the network's own names. Containers come and go, and an
/// address handed to the next container must not be cached anywhere:
/// dnsmasq's default for its local names is 0 too.
pub const TTL: u32 = 0;

/// The UDP payload size the server advertises in its EDNS answers: the
/// DNS flag day 2020 value, which fits every path's MTU unfragmented.
const ADVERTISED_PAYLOAD: u16 = 1232;

/// The most a UDP answer is ever made, whatever the client advertises.
const UDP_CEILING: usize = 4096;

/// What the server does with one datagram (see [`decide`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send these bytes back to the client: an answer from the network's
    /// names, or an error (REFUSED for a name that is not ours on an
    /// internal network, NOTIMP for another opcode, FORMERR for a query
    /// that does not parse, BADVERS for an EDNS version other than 0). It
    /// fits the client's UDP payload size, with TC set when the records do
    /// not.
    Answer(Vec<u8>),
    /// Not one of the network's names: ask the upstream resolvers and relay
    /// their answer (SERVFAIL when none answers).
    Forward,
    /// Say nothing: fewer bytes than a header, or a response (QR=1; never
    /// answered, so that two servers cannot be made to answer each other
    /// forever).
    Drop,
}

/// What to do with one datagram received over UDP from a client of the
/// network, given its names and whether there are resolvers to forward to.
pub fn decide(query: &[u8], names: &Names, has_upstream: bool) -> Decision {
    match plan(query, names, has_upstream, Transport::Udp) {
        Plan::Answer { bytes, .. } => Decision::Answer(bytes),
        Plan::Forward(_) => Decision::Forward,
        Plan::Drop => Decision::Drop,
    }
}

/// Where the query came in: it bounds the answer's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

/// How a local answer is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// From the network's names.
    Answered,
    /// REFUSED: not ours and nowhere to forward it.
    Refused,
    /// FORMERR, NOTIMP, BADVERS.
    Rejected,
}

/// [`Decision`] with what the server needs to carry it out.
#[derive(Debug)]
pub(crate) enum Plan {
    Answer { bytes: Vec<u8>, kind: Kind },
    Forward(Outgoing),
    Drop,
}

/// A query on its way to the upstream resolvers.
#[derive(Debug)]
pub(crate) struct Outgoing {
    request: Message,
    /// The largest answer the client takes.
    limit: usize,
}

pub(crate) fn plan(query: &[u8], names: &Names, has_upstream: bool, via: Transport) -> Plan {
    let Ok(header) = Header::read(&mut BinDecoder::new(query)) else {
        return Plan::Drop;
    };
    if header.metadata.message_type == MessageType::Response {
        return Plan::Drop;
    }
    if header.metadata.op_code != OpCode::Query {
        // The body of another opcode (UPDATE, NOTIFY, …) is not ours to
        // read: the header alone says no.
        return rejected(&header.metadata, ResponseCode::NotImp, None, false);
    }
    // Checked before the body is read: a QDCOUNT of 65535 would have the
    // decoder reserve room for that many questions first.
    if header.counts.queries != 1 {
        return rejected(&header.metadata, ResponseCode::FormErr, None, false);
    }
    let request = match Message::from_vec(query) {
        Ok(request) => request,
        Err(e) => {
            log::debug!("malformed query {}: {e}", header.metadata.id);
            return rejected(&header.metadata, ResponseCode::FormErr, None, false);
        }
    };
    let question = request.queries[0].clone();
    if request.edns.as_ref().is_some_and(|edns| edns.version() > 0) {
        // RFC 6891 6.1.3: BADVERS (an extended rcode, so with an OPT).
        return rejected(
            &request.metadata,
            ResponseCode::BADVERS,
            Some(&question),
            true,
        );
    }
    let limit = match via {
        Transport::Udp => usize::from(request.max_payload()).min(UDP_CEILING),
        Transport::Tcp => usize::from(u16::MAX),
    };
    match local(&question, names) {
        Some(answers) => {
            let mut response = response_to(&request, &question, has_upstream);
            response.metadata.authoritative = true;
            response.answers = answers;
            match encode(&response, limit) {
                Some(bytes) => Plan::Answer {
                    bytes,
                    kind: Kind::Answered,
                },
                None => Plan::Drop,
            }
        }
        None if has_upstream => Plan::Forward(Outgoing { request, limit }),
        None => {
            let mut response = response_to(&request, &question, false);
            response.metadata.response_code = ResponseCode::Refused;
            match encode(&response, limit) {
                Some(bytes) => Plan::Answer {
                    bytes,
                    kind: Kind::Refused,
                },
                None => Plan::Drop,
            }
        }
    }
}

/// The answer records when the question is about the network's names
/// (possibly none: a known name with no address of that family or a type
/// other than A/AAAA is NOERROR with an empty answer); `None` when it is
/// someone else's.
fn local(question: &Query, names: &Names) -> Option<Vec<Record>> {
    if question.query_class() != DNSClass::IN {
        return None;
    }
    let qname = question.name();
    let qtype = question.query_type();
    // A PTR for one of the network's addresses; any other reverse name
    // (the host's, the internet's) is the upstream's.
    if qtype == RecordType::PTR
        && let Some(addr) = reverse_address(qname)
    {
        let targets = names.reverse(addr);
        if !targets.is_empty() {
            let records = targets
                .iter()
                .filter_map(|target| Name::from_ascii(format!("{target}.")).ok())
                .map(|target| Record::from_rdata(qname.clone(), TTL, RData::PTR(PTR(target))))
                .collect();
            return Some(records);
        }
    }
    let addrs = names.find(&qname.to_ascii())?;
    let wanted = |addr: &IpAddr| match qtype {
        RecordType::A => addr.is_ipv4(),
        RecordType::AAAA => addr.is_ipv6(),
        RecordType::ANY => true,
        _ => false,
    };
    Some(
        addrs
            .iter()
            .filter(|addr| wanted(addr))
            .map(|addr| {
                let data = match addr {
                    IpAddr::V4(v4) => RData::A(A(*v4)),
                    IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
                };
                Record::from_rdata(qname.clone(), TTL, data)
            })
            .collect(),
    )
}

/// The address an in-addr.arpa or ip6.arpa name stands for, when it names
/// one whole address (not a network's zone).
fn reverse_address(name: &Name) -> Option<IpAddr> {
    let net = name.parse_arpa_name().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| net.addr())
}

/// A response to `request` echoing its question, as the server answers
/// everything: recursion available when it can forward.
fn response_to(request: &Message, question: &Query, recursion: bool) -> Message {
    let mut response = Message::response(request.metadata.id, OpCode::Query);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = recursion;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    response.add_query(question.clone());
    if request.edns.is_some() {
        // RFC 6891 6.1.1: an OPT in the query asks for one in the answer.
        response.set_edns(our_edns());
    }
    response
}

fn our_edns() -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(ADVERTISED_PAYLOAD).set_version(0);
    edns
}

/// An error answer from what could be read of the query (its header, and
/// its question when it parsed).
fn rejected(query: &Metadata, code: ResponseCode, question: Option<&Query>, edns: bool) -> Plan {
    let mut response = Message::error_msg(query.id, query.op_code, code);
    response.metadata.recursion_desired = query.recursion_desired;
    if let Some(question) = question {
        response.add_query(question.clone());
    }
    if edns {
        response.set_edns(our_edns());
    }
    // An error is a header, a question and an OPT: always under 512.
    match encode(&response, 512) {
        Some(bytes) => Plan::Answer {
            bytes,
            kind: Kind::Rejected,
        },
        None => Plan::Drop,
    }
}

/// The wire form of `response`, cut to its header, question and OPT with
/// TC set when it is longer than `limit` (the client then asks over TCP).
fn encode(response: &Message, limit: usize) -> Option<Vec<u8>> {
    let bytes = match response.to_vec() {
        Ok(bytes) => bytes,
        Err(e) => {
            log::warn!("cannot encode the answer to {}: {e}", response.metadata.id);
            return None;
        }
    };
    if bytes.len() <= limit {
        return Some(bytes);
    }
    let bytes = response.truncate().to_vec().ok()?;
    (bytes.len() <= limit).then_some(bytes)
}

impl Outgoing {
    /// What the client is told when no upstream resolver answered.
    pub(crate) fn servfail(&self) -> Vec<u8> {
        let question = &self.request.queries[0];
        let mut response = response_to(&self.request, question, true);
        response.metadata.response_code = ResponseCode::ServFail;
        encode(&response, self.limit).unwrap_or_default()
    }

    /// The upstream's `answer` made the client's, or `None` when it is not
    /// an answer to this question (a stray or spoofed datagram, garbage):
    /// the client's id put back, and cut to its payload size over UDP.
    pub(crate) fn relay(&self, answer: &[u8], sent_id: u16) -> Option<Vec<u8>> {
        let mut response = Message::from_vec(answer).ok()?;
        if response.metadata.id != sent_id
            || response.metadata.message_type != MessageType::Response
            || response.queries.len() != 1
            || response.queries[0] != self.request.queries[0]
        {
            return None;
        }
        let id = self.request.metadata.id;
        if answer.len() <= self.limit {
            // Relayed as received (its records, options, compression as
            // the upstream wrote them), only the id changed.
            let mut bytes = answer.to_vec();
            bytes[..2].copy_from_slice(&id.to_be_bytes());
            return Some(bytes);
        }
        response.metadata.id = id;
        encode(&response, self.limit)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn names() -> Names {
        let names = Names::new();
        names.set(
            "c1",
            &["web".into(), "Alias".into()],
            &["172.18.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
        );
        names.set("c2", &["v4only".into()], &["172.18.0.3".parse().unwrap()]);
        let many: Vec<IpAddr> = (0..200u8)
            .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 1, i)))
            .collect();
        names.set("c3", &["many".into()], &many);
        names
    }

    fn query(name: &str, qtype: RecordType) -> Message {
        let mut msg = Message::new(0x1234, MessageType::Query, OpCode::Query);
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        msg
    }

    fn bytes(msg: &Message) -> Vec<u8> {
        msg.to_vec().unwrap()
    }

    fn answer(data: &[u8], names: &Names, upstream: bool) -> Message {
        match decide(data, names, upstream) {
            Decision::Answer(bytes) => Message::from_vec(&bytes).unwrap(),
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    /// A header: id 0xbeef, flags, and the four counts.
    fn header(flags: u16, counts: [u16; 4]) -> Vec<u8> {
        let mut out = vec![0xbe, 0xef];
        out.extend_from_slice(&flags.to_be_bytes());
        for count in counts {
            out.extend_from_slice(&count.to_be_bytes());
        }
        out
    }

    // Hostile input first.

    #[test]
    fn truncated_headers_are_dropped() {
        let names = names();
        for len in 0..12 {
            let full = bytes(&query("web.", RecordType::A));
            assert_eq!(decide(&full[..len], &names, true), Decision::Drop, "{len}");
        }
    }

    #[test]
    fn responses_are_never_answered() {
        let names = names();
        // A well-formed answer about one of our names, as a reflection
        // loop would send it: still nothing.
        let mut msg = query("web.", RecordType::A);
        msg.metadata.message_type = MessageType::Response;
        assert_eq!(decide(&bytes(&msg), &names, true), Decision::Drop);
        assert_eq!(decide(&bytes(&msg), &names, false), Decision::Drop);
        // A bare header with QR set, any opcode and rcode.
        for flags in [0x8000, 0x8180, 0xf80f, 0xa805] {
            assert_eq!(decide(&header(flags, [0; 4]), &names, true), Decision::Drop);
        }
    }

    #[test]
    fn compression_pointer_loops_are_formerr() {
        let names = names();
        // The question's name points at itself (offset 12).
        let mut data = header(0x0100, [1, 0, 0, 0]);
        data.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let msg = answer(&data, &names, true);
        assert_eq!(msg.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(msg.metadata.id, 0xbeef);
        // Two pointers at each other: 12 → 14 → 12.
        let mut data = header(0x0100, [1, 0, 0, 0]);
        data.extend_from_slice(&[0xc0, 14, 0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(
            answer(&data, &names, true).metadata.response_code,
            ResponseCode::FormErr
        );
        // A label, then a pointer back to it: a loop through a label.
        let mut data = header(0x0100, [1, 0, 0, 0]);
        data.extend_from_slice(&[3, b'w', b'e', b'b', 0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(
            answer(&data, &names, true).metadata.response_code,
            ResponseCode::FormErr
        );
    }

    #[test]
    fn a_question_count_other_than_one_is_formerr() {
        let names = names();
        for count in [0u16, 2, 65535] {
            let mut data = header(0x0100, [count, 0, 0, 0]);
            data.extend_from_slice(&[3, b'w', b'e', b'b', 0, 0, 1, 0, 1]);
            let msg = answer(&data, &names, true);
            assert_eq!(msg.metadata.response_code, ResponseCode::FormErr, "{count}");
            assert!(msg.answers.is_empty());
        }
    }

    #[test]
    fn other_opcodes_are_notimp() {
        let names = names();
        for opcode in [1u16, 2, 4, 5, 15] {
            let mut data = header(opcode << 11, [1, 0, 0, 0]);
            data.extend_from_slice(&[3, b'w', b'e', b'b', 0, 0, 1, 0, 1]);
            let msg = answer(&data, &names, true);
            assert_eq!(msg.metadata.response_code, ResponseCode::NotImp, "{opcode}");
            assert_eq!(msg.metadata.message_type, MessageType::Response);
        }
    }

    #[test]
    fn huge_and_bad_names_are_formerr() {
        let names = names();
        // 5 labels of 63: 320 bytes, past the 255 a name may have.
        let mut data = header(0x0100, [1, 0, 0, 0]);
        for _ in 0..5 {
            data.push(63);
            data.extend_from_slice(&[b'a'; 63]);
        }
        data.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(
            answer(&data, &names, true).metadata.response_code,
            ResponseCode::FormErr
        );
        // A label length of 64 (the two top bits say "extended label").
        let mut data = header(0x0100, [1, 0, 0, 0]);
        data.push(64);
        data.extend_from_slice(&[b'a'; 64]);
        data.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(
            answer(&data, &names, true).metadata.response_code,
            ResponseCode::FormErr
        );
        // The question cut off after its name.
        let mut data = header(0x0100, [1, 0, 0, 0]);
        data.extend_from_slice(&[3, b'w', b'e', b'b', 0, 0]);
        assert_eq!(
            answer(&data, &names, true).metadata.response_code,
            ResponseCode::FormErr
        );
    }

    #[test]
    fn a_tiny_edns_payload_still_gets_512_and_tc() {
        let names = names();
        let mut msg = query("many.", RecordType::A);
        let mut edns = Edns::new();
        edns.set_max_payload(1);
        msg.set_edns(edns);
        let reply = answer(&bytes(&msg), &names, true);
        assert!(reply.metadata.truncation);
        assert!(reply.answers.is_empty());
        assert_eq!(reply.queries, msg.queries);
        assert!(reply.edns.is_some());
        // Without EDNS, 512: 200 A records do not fit either.
        let Decision::Answer(data) = decide(&bytes(&query("many.", RecordType::A)), &names, true)
        else {
            panic!()
        };
        assert!(data.len() <= 512);
        assert!(Message::from_vec(&data).unwrap().metadata.truncation);
    }

    #[test]
    fn a_large_payload_takes_the_whole_answer_and_tcp_more() {
        let names = names();
        let mut msg = query("many.", RecordType::A);
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        msg.set_edns(edns);
        let reply = answer(&bytes(&msg), &names, true);
        assert!(!reply.metadata.truncation);
        assert_eq!(reply.answers.len(), 200);
        let Plan::Answer { bytes, .. } = plan(
            &bytes(&query("many.", RecordType::A)),
            &names,
            true,
            Transport::Tcp,
        ) else {
            panic!()
        };
        assert_eq!(Message::from_vec(&bytes).unwrap().answers.len(), 200);
    }

    #[test]
    fn edns_versions_other_than_zero_are_badvers() {
        let names = names();
        let mut msg = query("web.", RecordType::A);
        let mut edns = Edns::new();
        edns.set_version(1);
        msg.set_edns(edns);
        let reply = answer(&bytes(&msg), &names, true);
        // 16 is both BADVERS and BADSIG: hickory reads it back as the latter.
        assert_eq!(u16::from(reply.metadata.response_code), 16);
        assert_eq!(reply.edns.unwrap().version(), 0);
    }

    #[test]
    fn garbage_never_panics() {
        let names = names();
        // A cheap deterministic sweep (the fuzz target does the rest).
        let mut state = 0x9e37_79b9_u32;
        for len in 0..600 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            let _ = decide(&data, &names, true);
            let _ = decide(&data, &names, false);
        }
    }

    #[test]
    fn every_mutation_of_a_query_gets_a_well_formed_answer_or_none() {
        let names = names();
        let mut edns = query("many.", RecordType::A);
        edns.set_edns(Edns::new());
        let seeds = [
            bytes(&query("web.", RecordType::A)),
            bytes(&query("2.0.18.172.in-addr.arpa.", RecordType::PTR)),
            bytes(&edns),
        ];
        for seed in seeds {
            for at in 0..seed.len() {
                for value in [0u8, 1, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff] {
                    let mut data = seed.clone();
                    data[at] = value;
                    for data in [&data[..], &data[..at]] {
                        for upstream in [true, false] {
                            if let Decision::Answer(reply) = decide(data, &names, upstream) {
                                let msg = Message::from_vec(&reply)
                                    .unwrap_or_else(|e| panic!("{data:?}: {e}"));
                                assert_eq!(msg.metadata.message_type, MessageType::Response);
                                assert_eq!(reply[..2], data[..2]);
                                assert!(reply.len() <= 512 || msg.edns.is_some());
                            }
                        }
                    }
                }
            }
        }
    }

    // The network's names.

    #[test]
    fn a_and_aaaa_answer_their_family_authoritatively() {
        let names = names();
        let reply = answer(&bytes(&query("WEB.", RecordType::A)), &names, true);
        assert_eq!(reply.metadata.id, 0x1234);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        assert!(reply.metadata.recursion_available);
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(reply.answers[0].ttl, TTL);
        assert_eq!(
            reply.answers[0].data,
            RData::A(A(Ipv4Addr::new(172, 18, 0, 2)))
        );
        assert_eq!(reply.answers[0].name, Name::from_ascii("web.").unwrap());
        let reply = answer(&bytes(&query("alias.", RecordType::AAAA)), &names, false);
        assert_eq!(
            reply.answers[0].data,
            RData::AAAA(AAAA("fd00::2".parse::<Ipv6Addr>().unwrap()))
        );
        assert!(!reply.metadata.recursion_available);
    }

    #[test]
    fn known_names_of_other_types_or_families_are_empty_noerror() {
        let names = names();
        for (name, qtype) in [
            ("v4only.", RecordType::AAAA),
            ("web.", RecordType::MX),
            ("web.", RecordType::TXT),
        ] {
            for upstream in [true, false] {
                let reply = answer(&bytes(&query(name, qtype)), &names, upstream);
                assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
                assert!(reply.answers.is_empty(), "{name} {qtype}");
                assert!(reply.metadata.authoritative);
            }
        }
    }

    #[test]
    fn ptr_answers_the_name_of_a_known_address() {
        let names = names();
        let reply = answer(
            &bytes(&query("2.0.18.172.in-addr.arpa.", RecordType::PTR)),
            &names,
            true,
        );
        assert_eq!(
            reply.answers[0].data,
            RData::PTR(PTR(Name::from_ascii("web.").unwrap()))
        );
        let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
        let reply = answer(&bytes(&query(v6, RecordType::PTR)), &names, true);
        assert_eq!(reply.answers.len(), 1);
        // Someone else's address, or a zone, is the upstream's.
        for other in ["9.0.18.172.in-addr.arpa.", "18.172.in-addr.arpa."] {
            assert_eq!(
                decide(&bytes(&query(other, RecordType::PTR)), &names, true),
                Decision::Forward
            );
        }
    }

    #[test]
    fn other_names_are_forwarded_or_refused() {
        let names = names();
        let data = bytes(&query("example.com.", RecordType::A));
        assert_eq!(decide(&data, &names, true), Decision::Forward);
        let reply = answer(&data, &names, false);
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
        assert_eq!(reply.queries, query("example.com.", RecordType::A).queries);
        // Names are exact: no search suffix, no subdomains.
        let data = bytes(&query("web.example.com.", RecordType::A));
        assert_eq!(decide(&data, &names, true), Decision::Forward);
        // Not class IN (version.bind CH): not ours either.
        let mut msg = query("web.", RecordType::TXT);
        msg.queries[0].set_query_class(DNSClass::CH);
        assert_eq!(decide(&bytes(&msg), &names, true), Decision::Forward);
    }

    #[test]
    fn the_answer_order_turns() {
        let names = Names::new();
        names.set("a", &["db".into()], &["10.0.0.1".parse().unwrap()]);
        names.set("b", &["db".into()], &["10.0.0.2".parse().unwrap()]);
        let data = bytes(&query("db.", RecordType::A));
        let first = answer(&data, &names, true).answers;
        let second = answer(&data, &names, true).answers;
        assert_eq!(first.len(), 2);
        assert_ne!(first[0].data, second[0].data);
    }

    #[test]
    fn relay_puts_the_client_id_back_and_checks_the_question() {
        let names = names();
        let Plan::Forward(out) = plan(
            &bytes(&query("example.com.", RecordType::A)),
            &names,
            true,
            Transport::Udp,
        ) else {
            panic!()
        };
        let mut upstream = query("EXAMPLE.com.", RecordType::A);
        upstream.metadata.id = 777;
        upstream.metadata.message_type = MessageType::Response;
        upstream.add_answer(Record::from_rdata(
            Name::from_ascii("example.com.").unwrap(),
            60,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        ));
        let relayed = out.relay(&bytes(&upstream), 777).unwrap();
        let relayed = Message::from_vec(&relayed).unwrap();
        assert_eq!(relayed.metadata.id, 0x1234);
        assert_eq!(relayed.answers.len(), 1);
        // Another id, another question, a query: not the answer.
        assert!(out.relay(&bytes(&upstream), 778).is_none());
        let mut other = upstream.clone();
        other.queries[0].set_query_type(RecordType::AAAA);
        assert!(out.relay(&bytes(&other), 777).is_none());
        let mut not_answer = upstream.clone();
        not_answer.metadata.message_type = MessageType::Query;
        assert!(out.relay(&bytes(&not_answer), 777).is_none());
        assert!(out.relay(&[0; 5], 777).is_none());
        // An upstream answer larger than the client's UDP payload: cut,
        // with TC, so the client asks again over TCP.
        let mut big = upstream.clone();
        for i in 0..100u8 {
            big.add_answer(Record::from_rdata(
                Name::from_ascii("example.com.").unwrap(),
                60,
                RData::A(A(Ipv4Addr::new(192, 0, 2, i))),
            ));
        }
        let relayed = out.relay(&bytes(&big), 777).unwrap();
        assert!(relayed.len() <= 512);
        let relayed = Message::from_vec(&relayed).unwrap();
        assert!(relayed.metadata.truncation);
        assert_eq!(relayed.metadata.id, 0x1234);
        assert_eq!(relayed.queries, upstream.queries);
        let fail = Message::from_vec(&out.servfail()).unwrap();
        assert_eq!(fail.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(fail.metadata.id, 0x1234);
    }
}
