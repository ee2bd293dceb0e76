//! `dns_query` seeds: queries as stub resolvers send them, encoded by
//! hickory-proto (each kind of question the server answers itself, one it
//! forwards, EDNS), and the hostile shapes its tests start from (a
//! compression loop, another opcode, a response).

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use super::Seed;

fn query(name: &str, qtype: RecordType) -> Message {
    let mut msg = Message::new(0x1234, MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    msg
}

fn seed(name: &'static str, msg: &Message) -> Seed {
    (name, msg.to_vec().unwrap())
}

pub fn seeds() -> Vec<Seed> {
    let mut edns = query("many.", RecordType::A);
    let mut opt = Edns::new();
    opt.set_max_payload(1232);
    edns.set_edns(opt);
    let mut response = query("web.", RecordType::A);
    response.metadata.message_type = MessageType::Response;
    let mut notify = query("web.", RecordType::SOA);
    notify.metadata.op_code = OpCode::Notify;
    // The question's name is a pointer to itself.
    let mut pointer_loop = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    pointer_loop.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    vec![
        seed("a", &query("web.", RecordType::A)),
        seed("aaaa", &query("Alias.", RecordType::AAAA)),
        seed("mx", &query("quiet.", RecordType::MX)),
        seed("ptr", &query("2.0.18.172.in-addr.arpa.", RecordType::PTR)),
        seed("forwarded", &query("example.com.", RecordType::A)),
        seed("edns", &edns),
        seed("response", &response),
        seed("notify", &notify),
        ("pointer-loop", pointer_loop),
    ]
}
