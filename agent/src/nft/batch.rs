//! Talking to nf_tables: a transaction is one batch datagram
//! (BATCH_BEGIN, the messages, BATCH_END) that the kernel commits whole
//! or not at all; a listing is a dump.
//!
//! Every message of a batch asks for an ack (NLM_F_ACK), and the kernel
//! processes the whole batch before answering, so there is one ack per
//! message, error or not, each with the message's sequence number: that
//! is how an error names the object that failed. A failure of the batch
//! itself (no permission, no nf_tables, a failed commit) is acked with
//! BATCH_BEGIN's sequence number.

use std::io;

use super::NftError;
use super::sys::Socket;
use super::uapi::*;
use super::wire::{self, Writer};

/// Big enough for any datagram the kernel sends us: a dump fills at
/// most 32 KiB (netlink's cap) and an ack is a message and a bit.
const RECV_BUF: usize = 64 * 1024;

/// `NLM_F_DUMP_INTR`: the ruleset changed during the dump.
const NLM_F_DUMP_INTR: u16 = 0x10;

/// A batch being written. Sequence numbers: BATCH_BEGIN is 0, message
/// `i` (from 0) is `i + 1`, BATCH_END follows the last.
#[derive(Debug)]
pub struct Batch {
    buf: Vec<u8>,
    /// What each message is about, by its sequence number - 1, for errors.
    objects: Vec<String>,
}

impl Batch {
    pub fn new() -> Self {
        let mut buf = Vec::new();
        wire::message(
            &mut buf,
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            0,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
            |_| {},
        );
        Self {
            buf,
            objects: Vec::new(),
        }
    }

    /// Adds an nf_tables message `msg` of the inet family about `object`
    /// ("rule 3 of chain forward (...)").
    pub fn push(
        &mut self,
        msg: u16,
        flags: u16,
        object: String,
        attrs: impl FnOnce(&mut Writer<'_>),
    ) {
        self.objects.push(object);
        let seq = self.objects.len() as u32;
        wire::message(
            &mut self.buf,
            wire::nft_type(msg),
            NLM_F_REQUEST | NLM_F_ACK | flags,
            seq,
            NFPROTO_INET,
            0,
            attrs,
        );
    }

    /// The datagram, BATCH_END written.
    pub(super) fn seal(mut self) -> (Vec<u8>, Vec<String>) {
        let seq = self.objects.len() as u32 + 1;
        wire::message(
            &mut self.buf,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            seq,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
            |_| {},
        );
        (self.buf, self.objects)
    }

    /// Sends the batch on a new socket of the calling thread's network
    /// namespace and waits for every ack. Nothing has changed if it fails.
    pub fn commit(self) -> Result<(), NftError> {
        let (datagram, objects) = self.seal();
        let socket = Socket::open().map_err(socket_error("opening"))?;
        // An error ack holds the message it answers: room for all of them.
        socket.reserve(datagram.len(), 2 * datagram.len() + RECV_BUF);
        socket
            .send(&datagram)
            .map_err(socket_error("sending the batch on"))?;
        let mut acks = Acks::new(&objects);
        let mut buf = vec![0; RECV_BUF];
        while !acks.done() {
            let datagram = socket
                .recv(&mut buf)
                .map_err(socket_error("reading acks from"))?;
            acks.feed(datagram)?;
        }
        acks.result()
    }
}

fn socket_error(op: &'static str) -> impl FnOnce(io::Error) -> NftError {
    move |source| NftError::Socket { op, source }
}

/// The acks of a batch, as they come in.
#[derive(Debug)]
pub struct Acks<'a> {
    objects: &'a [String],
    acked: Vec<bool>,
    pending: usize,
    /// The first message refused: its index and errno.
    refused: Option<(usize, i32)>,
    /// The batch as a whole refused.
    batch: Option<i32>,
}

impl<'a> Acks<'a> {
    pub fn new(objects: &'a [String]) -> Self {
        Self {
            objects,
            acked: vec![false; objects.len()],
            pending: objects.len(),
            refused: None,
            batch: None,
        }
    }

    pub fn done(&self) -> bool {
        self.pending == 0 || self.batch.is_some()
    }

    /// Takes in one datagram of acks.
    pub fn feed(&mut self, datagram: &[u8]) -> Result<(), NftError> {
        for message in wire::messages(datagram) {
            let message = message.map_err(NftError::Malformed)?;
            if message.kind != NLMSG_ERROR {
                continue; // (nothing else is sent without NLM_F_ECHO)
            }
            let errno = ack_errno(message.payload)?;
            match message.seq as usize {
                seq @ 1.. if seq <= self.objects.len() => {
                    let index = seq - 1;
                    if !std::mem::replace(&mut self.acked[index], true) {
                        self.pending -= 1;
                    }
                    if errno != 0 && self.refused.is_none_or(|(first, _)| index < first) {
                        self.refused = Some((index, errno));
                    }
                }
                // BATCH_BEGIN's (or BATCH_END's): the batch as a whole.
                _ if errno != 0 => self.batch = Some(errno),
                _ => {}
            }
        }
        Ok(())
    }

    /// What the acks say: a refusal of the batch first (nothing else
    /// counts then), else the first message refused, which the ones after
    /// it usually failed because of.
    pub fn result(self) -> Result<(), NftError> {
        if let Some(errno) = self.batch {
            return Err(NftError::Kernel {
                object: format!("the nf_tables batch for table inet {}", super::TABLE),
                source: io::Error::from_raw_os_error(errno),
            });
        }
        if let Some((index, errno)) = self.refused {
            return Err(NftError::Kernel {
                object: self.objects[index].clone(),
                source: io::Error::from_raw_os_error(errno),
            });
        }
        Ok(())
    }
}

/// `struct nlmsgerr`'s error: 0 for an ack, else a negative errno.
fn ack_errno(payload: &[u8]) -> Result<i32, NftError> {
    let bytes = payload
        .get(..4)
        .ok_or_else(|| NftError::Malformed("a truncated error message".into()))?;
    let error = i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    Ok(error.saturating_neg())
}

/// Dumps the inet table `table`'s rules (NFT_MSG_GETRULE, NLM_F_DUMP,
/// filtered by NFTA_RULE_TABLE) and hands each rule's attributes to
/// `each`. A table that does not exist has no rules. A dump the
/// ruleset's change interrupted is started again.
pub fn dump_rules(
    table: &str,
    mut each: impl FnMut(&[u8]) -> Result<(), NftError>,
) -> Result<(), NftError> {
    let object = || format!("listing the rules of table inet {table}");
    for _attempt in 0..3 {
        let socket = Socket::open().map_err(socket_error("opening"))?;
        let mut request = Vec::new();
        wire::message(
            &mut request,
            wire::nft_type(NFT_MSG_GETRULE),
            NLM_F_REQUEST | NLM_F_DUMP,
            1,
            NFPROTO_INET,
            0,
            |w| w.put_str(NFTA_RULE_TABLE, table),
        );
        socket
            .send(&request)
            .map_err(socket_error("sending a dump request on"))?;
        let mut rules = Vec::new();
        let mut interrupted = false;
        let mut buf = vec![0; RECV_BUF];
        'dump: loop {
            let datagram = socket
                .recv(&mut buf)
                .map_err(socket_error("reading a dump from"))?;
            for message in wire::messages(datagram) {
                let message = message.map_err(NftError::Malformed)?;
                interrupted |= message.flags & NLM_F_DUMP_INTR != 0;
                match message.kind {
                    NLMSG_DONE | NLMSG_ERROR => {
                        let errno = ack_errno(message.payload)?;
                        // (the table's absence is no error: nothing to list)
                        if errno != 0 && errno != libc::ENOENT {
                            return Err(NftError::Kernel {
                                object: object(),
                                source: io::Error::from_raw_os_error(errno),
                            });
                        }
                        break 'dump;
                    }
                    kind if kind == wire::nft_type(NFT_MSG_NEWRULE) => {
                        let attrs = message.payload.get(NFGENMSG_LEN..).ok_or_else(|| {
                            NftError::Malformed("a rule message without its nfgenmsg".into())
                        })?;
                        rules.push(attrs.to_vec());
                    }
                    _ => {}
                }
            }
        }
        if !interrupted {
            for rule in &rules {
                each(rule)?;
            }
            return Ok(());
        }
    }
    Err(NftError::Kernel {
        object: object(),
        source: io::Error::from_raw_os_error(libc::EINTR),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ack as the kernel writes it: nlmsgerr = error, then the
    /// request's header (and, for an error, its payload).
    fn ack(seq: u32, errno: i32) -> Vec<u8> {
        let mut buf = Vec::new();
        let len = 16 + 4 + 16;
        buf.extend_from_slice(&(len as u32).to_ne_bytes());
        buf.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        buf.extend_from_slice(&0u16.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&1234u32.to_ne_bytes());
        buf.extend_from_slice(&(-errno).to_ne_bytes());
        buf.extend_from_slice(&[0; 16]);
        buf
    }

    fn objects() -> Vec<String> {
        [
            "table inet husk",
            "chain ports",
            "rule 1 of chain ports (x)",
            "rule 2 of chain ports (y)",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn the_sequence_number_names_the_object_that_failed() {
        let objects = objects();
        let mut acks = Acks::new(&objects);
        acks.feed(&ack(1, 0)).unwrap();
        acks.feed(&[ack(2, 0), ack(3, libc::EEXIST)].concat())
            .unwrap();
        assert!(!acks.done());
        acks.feed(&ack(4, libc::ENOENT)).unwrap();
        assert!(acks.done());
        let error = acks.result().unwrap_err();
        assert_eq!(
            error.to_string(),
            "rule 1 of chain ports (x): File exists (EEXIST)"
        );
        let NftError::Kernel { source, .. } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(source.raw_os_error(), Some(libc::EEXIST));
    }

    #[test]
    fn all_acked_is_success_and_a_batch_error_ends_the_wait() {
        let objects = objects();
        let mut acks = Acks::new(&objects);
        for seq in 1..=4 {
            acks.feed(&ack(seq, 0)).unwrap();
        }
        assert!(acks.done());
        acks.result().unwrap();

        let mut acks = Acks::new(&objects);
        acks.feed(&ack(0, libc::EPERM)).unwrap();
        assert!(acks.done());
        assert_eq!(
            acks.result().unwrap_err().to_string(),
            "the nf_tables batch for table inet husk: Operation not permitted (EPERM)"
        );
    }

    #[test]
    fn a_batch_has_begin_messages_and_end_with_their_sequence_numbers() {
        let mut batch = Batch::new();
        batch.push(
            NFT_MSG_NEWTABLE,
            NLM_F_CREATE,
            "table inet husk".into(),
            |w| w.put_str(NFTA_TABLE_NAME, "husk"),
        );
        batch.push(NFT_MSG_DELTABLE, 0, "table inet husk".into(), |w| {
            w.put_str(NFTA_TABLE_NAME, "husk")
        });
        let (datagram, objects) = batch.seal();
        assert_eq!(objects.len(), 2);
        let messages: Vec<_> = wire::messages(&datagram).map(Result::unwrap).collect();
        let kinds: Vec<_> = messages.iter().map(|m| (m.kind, m.seq)).collect();
        assert_eq!(kinds, [(0x10, 0), (0x0a00, 1), (0x0a02, 2), (0x11, 3)]);
        assert_eq!(messages[1].flags, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE);
        // BATCH_BEGIN's res_id names the subsystem, big-endian.
        assert_eq!(messages[0].payload, [0, 0, 0, 10]);
        assert_eq!(messages[2].payload[0], NFPROTO_INET);
    }

    /// On the real kernel, in a network namespace of the test's thread:
    /// the second of two rules jumps to a chain that does not exist.
    #[test]
    fn the_kernel_names_the_message_it_refuses() {
        use crate::nft::expr::{Expr, Verdict, write_exprs};
        assert!(
            rustix::process::geteuid().is_root(),
            "this test programs nftables in a network namespace: run it as root, as CI does"
        );
        // SAFETY: NEWNET only: the thread's file descriptor table stays shared.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }.unwrap();
        let rule = |batch: &mut Batch, n: usize, target: &'static str| {
            batch.push(
                NFT_MSG_NEWRULE,
                NLM_F_CREATE | NLM_F_APPEND,
                format!("rule {n} (jump {target})"),
                |w| {
                    w.put_str(NFTA_RULE_TABLE, "husk");
                    w.put_str(NFTA_RULE_CHAIN, "a");
                    write_exprs(w, &[Expr::Verdict(Verdict::Jump(target))]);
                },
            )
        };
        let mut batch = Batch::new();
        batch.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, "table".into(), |w| {
            w.put_str(NFTA_TABLE_NAME, "husk")
        });
        for chain in ["a", "b"] {
            batch.push(
                NFT_MSG_NEWCHAIN,
                NLM_F_CREATE,
                format!("chain {chain}"),
                |w| {
                    w.put_str(NFTA_CHAIN_TABLE, "husk");
                    w.put_str(NFTA_CHAIN_NAME, chain);
                },
            );
        }
        rule(&mut batch, 1, "b");
        rule(&mut batch, 2, "nowhere");
        rule(&mut batch, 3, "b");
        let error = batch.commit().unwrap_err();
        assert_eq!(
            error.to_string(),
            "rule 2 (jump nowhere): No such file or directory (ENOENT)"
        );
        // Nothing was committed.
        let mut rules = 0;
        dump_rules("husk", |_| {
            rules += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(rules, 0);

        // The same batch without the bad rule commits, and the dump sees it.
        let mut batch = Batch::new();
        batch.push(NFT_MSG_NEWTABLE, NLM_F_CREATE, "table".into(), |w| {
            w.put_str(NFTA_TABLE_NAME, "husk")
        });
        for chain in ["a", "b"] {
            batch.push(
                NFT_MSG_NEWCHAIN,
                NLM_F_CREATE,
                format!("chain {chain}"),
                |w| {
                    w.put_str(NFTA_CHAIN_TABLE, "husk");
                    w.put_str(NFTA_CHAIN_NAME, chain);
                },
            );
        }
        rule(&mut batch, 1, "b");
        batch.commit().unwrap();
        dump_rules("husk", |_| {
            rules += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(rules, 1);
        // A second NEWCHAIN of "a" with NLM_F_EXCL: EEXIST, by name.
        const NLM_F_EXCL: u16 = 0x200; // linux/netlink.h
        let mut batch = Batch::new();
        batch.push(
            NFT_MSG_NEWCHAIN,
            NLM_F_CREATE | NLM_F_EXCL,
            "chain a again".into(),
            |w| {
                w.put_str(NFTA_CHAIN_TABLE, "husk");
                w.put_str(NFTA_CHAIN_NAME, "a");
            },
        );
        let error = batch.commit().unwrap_err();
        assert_eq!(error.to_string(), "chain a again: File exists (EEXIST)");
    }

    #[test]
    fn a_garbled_ack_is_an_error() {
        let objects = objects();
        let mut acks = Acks::new(&objects);
        let mut bad = ack(1, 0);
        bad.truncate(18);
        assert!(matches!(acks.feed(&bad), Err(NftError::Malformed(_))));
    }
}
