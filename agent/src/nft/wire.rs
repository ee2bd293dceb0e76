//! Netlink on the wire: messages (`struct nlmsghdr` + `struct nfgenmsg`)
//! and attributes (`struct nlattr`: length, type, payload padded to 4
//! bytes), written and read.
//!
//! Byte order: the netlink headers are in the host's order; nf_tables
//! wants every number attribute (`NLA_U32`, `NLA_BE64`) big-endian, and
//! register data in the order the packet or the kernel holds it (the
//! callers say which). `nfgen_res_id` is big-endian.
//!
//! An attribute holds less than 64 KiB (`nla_len` is a u16); the callers
//! keep to that: a rule is a few hundred bytes, and set elements go 1024
//! to a message.

use super::uapi::*;

/// `NLA_ALIGN`/`NLMSG_ALIGN`: everything is padded to 4 bytes.
pub const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// Appends attributes to a message being built.
pub struct Writer<'a> {
    buf: &'a mut Vec<u8>,
}

impl Writer<'_> {
    /// One attribute: `nla_len` counts the header and the payload, not
    /// the padding that follows.
    pub fn put(&mut self, kind: u16, payload: &[u8]) {
        let len = NLA_HDRLEN + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
    }

    /// A big-endian `NLA_U32` (all of nf_tables' numbers are).
    pub fn put_u32(&mut self, kind: u16, value: u32) {
        self.put(kind, &value.to_be_bytes());
    }

    /// A big-endian `NLA_U64` (nla_get_be64 copies it: no 8-byte
    /// alignment needed, so no pad attribute before it).
    pub fn put_u64(&mut self, kind: u16, value: u64) {
        self.put(kind, &value.to_be_bytes());
    }

    /// A NUL-terminated `NLA_STRING`, as nft sends names.
    pub fn put_str(&mut self, kind: u16, value: &str) {
        let mut bytes = Vec::with_capacity(value.len() + 1);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
        self.put(kind, &bytes);
    }

    /// A nested attribute (`NLA_F_NESTED`, as libmnl marks them): its
    /// length covers its children, their padding included.
    pub fn nest(&mut self, kind: u16, children: impl FnOnce(&mut Writer<'_>)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; NLA_HDRLEN]);
        children(&mut Writer { buf: self.buf });
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.buf[start + 2..start + 4].copy_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    /// `NFTA_DATA_VALUE` nested in `kind`: how cmp, bitwise and
    /// immediate take their constants.
    pub fn put_value(&mut self, kind: u16, value: &[u8]) {
        self.nest(kind, |w| w.put(NFTA_DATA_VALUE, value));
    }

    fn pad(&mut self) {
        self.buf.resize(align(self.buf.len()), 0);
    }
}

/// Appends one message to `buf`: the netlink header, the nfgenmsg
/// (`family`, version 0, `res_id`), then what `attrs` writes; the
/// header's length is filled in at the end.
pub fn message(
    buf: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: impl FnOnce(&mut Writer<'_>),
) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]); // nlmsg_len, below
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel's is 0
    buf.push(family);
    buf.push(NFNETLINK_V0);
    buf.extend_from_slice(&res_id.to_be_bytes());
    attrs(&mut Writer { buf });
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// `(NFNL_SUBSYS_NFTABLES << 8) | msg`: an nf_tables message type.
pub const fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// A received message: its header's fields and its payload (what
/// follows `struct nlmsghdr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// The messages in one datagram. Stops with an error at the first
/// header whose length does not fit.
pub fn messages(mut buf: &[u8]) -> impl Iterator<Item = Result<Received<'_>, String>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let parsed = (|| {
            let header = buf
                .get(..NLMSG_HDRLEN)
                .ok_or("a truncated message header")?;
            let len = u32::from_ne_bytes(ne4(&header[0..4])) as usize;
            if len < NLMSG_HDRLEN || len > buf.len() {
                return Err(format!(
                    "a message of {len} bytes in {} received",
                    buf.len()
                ));
            }
            let message = Received {
                kind: u16::from_ne_bytes([header[4], header[5]]),
                flags: u16::from_ne_bytes([header[6], header[7]]),
                seq: u32::from_ne_bytes(ne4(&header[8..12])),
                payload: &buf[NLMSG_HDRLEN..len],
            };
            Ok((message, align(len).min(buf.len())))
        })();
        match parsed {
            Ok((message, used)) => {
                buf = &buf[used..];
                Some(Ok(message))
            }
            Err(error) => {
                buf = &[];
                Some(Err(error))
            }
        }
    })
}

/// The attributes in `buf`, as (type without the NESTED and BYTEORDER
/// flags, payload).
pub fn attrs(mut buf: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), String>> {
    std::iter::from_fn(move || {
        if buf.len() < NLA_HDRLEN {
            // (trailing padding, or nothing left)
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > buf.len() {
            let error = format!("an attribute of {len} bytes in {}", buf.len());
            buf = &[];
            return Some(Err(error));
        }
        let payload = &buf[NLA_HDRLEN..len];
        buf = &buf[align(len).min(buf.len())..];
        Some(Ok((kind, payload)))
    })
}

/// The payload of the first attribute of type `kind` in `buf`.
pub fn find(buf: &[u8], kind: u16) -> Result<Option<&[u8]>, String> {
    for attr in attrs(buf) {
        let (k, payload) = attr?;
        if k == kind {
            return Ok(Some(payload));
        }
    }
    Ok(None)
}

/// A big-endian u32 or u64 attribute's value.
pub fn be_uint(payload: &[u8]) -> Result<u64, String> {
    match payload.len() {
        4 => Ok(u32::from_be_bytes(ne4(payload)).into()),
        8 => {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(payload);
            Ok(u64::from_be_bytes(bytes))
        }
        n => Err(format!("a number attribute of {n} bytes")),
    }
}

/// An `NLA_STRING` (NUL-terminated or not) as text.
pub fn string(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

fn ne4(bytes: &[u8]) -> [u8; 4] {
    let mut out = [0; 4];
    out.copy_from_slice(&bytes[..4]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(f: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
        let mut buf = Vec::new();
        f(&mut Writer { buf: &mut buf });
        buf
    }

    #[test]
    fn an_attribute_is_padded_to_four_bytes_but_its_length_is_not() {
        let buf = written(|w| w.put_str(NFTA_TABLE_NAME, "husk"));
        // 4 header + "husk\0" = 9, padded to 12.
        assert_eq!(buf.len(), 12);
        assert_eq!(u16::from_ne_bytes([buf[0], buf[1]]), 9);
        assert_eq!(u16::from_ne_bytes([buf[2], buf[3]]), NFTA_TABLE_NAME);
        assert_eq!(&buf[4..], b"husk\0\0\0\0");
        // An aligned payload needs no padding.
        assert_eq!(written(|w| w.put(1, b"abcd")).len(), 8);
        assert_eq!(written(|w| w.put(1, b"")).len(), 4);
    }

    #[test]
    fn numbers_are_big_endian() {
        let buf = written(|w| w.put_u32(NFTA_CHAIN_POLICY, 0x0102_0304));
        assert_eq!(&buf[4..], &[1, 2, 3, 4]);
        // A priority of -100 is its two's complement, big-endian.
        let buf = written(|w| w.put_u32(NFTA_HOOK_PRIORITY, -100i32 as u32));
        assert_eq!(&buf[4..], &[0xff, 0xff, 0xff, 0x9c]);
        assert_eq!(be_uint(&buf[4..]), Ok(0xffff_ff9c));
        assert_eq!(be_uint(&[0, 0, 0, 0, 0, 0, 1, 2]), Ok(0x102));
    }

    #[test]
    fn a_nest_counts_its_children_and_their_padding() {
        let buf = written(|w| {
            w.nest(NFTA_CHAIN_HOOK, |w| {
                w.put(7, &[1]); // 5 bytes, padded to 8
                w.put_u32(NFTA_HOOK_PRIORITY, 100);
            })
        });
        assert_eq!(buf.len(), 4 + 8 + 8);
        assert_eq!(u16::from_ne_bytes([buf[0], buf[1]]) as usize, buf.len());
        assert_eq!(
            u16::from_ne_bytes([buf[2], buf[3]]),
            NFTA_CHAIN_HOOK | NLA_F_NESTED
        );
        // Read back: the flag is masked off, the children are found.
        let (kind, inner) = attrs(&buf).next().unwrap().unwrap();
        assert_eq!(kind, NFTA_CHAIN_HOOK);
        let children: Vec<_> = attrs(inner).map(Result::unwrap).collect();
        assert_eq!(
            children,
            [(7, &[1u8][..]), (NFTA_HOOK_PRIORITY, &[0, 0, 0, 100][..])]
        );
        // Nests nest.
        let buf = written(|w| w.nest(1, |w| w.put_value(3, &[0xaa, 0xbb])));
        assert_eq!(
            buf,
            [16, 0, 1, 0x80, 12, 0, 3, 0x80, 6, 0, 1, 0, 0xaa, 0xbb, 0, 0]
        );
    }

    #[test]
    fn a_message_has_its_length_and_an_nfgenmsg() {
        let mut buf = Vec::new();
        message(
            &mut buf,
            nft_type(NFT_MSG_NEWTABLE),
            NLM_F_REQUEST,
            7,
            NFPROTO_INET,
            0,
            |w| {
                w.put_str(NFTA_TABLE_NAME, "husk");
            },
        );
        message(
            &mut buf,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            8,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
            |_| {},
        );
        assert_eq!(buf.len(), 16 + 4 + 12 + 16 + 4);
        assert_eq!(u32::from_ne_bytes(ne4(&buf)), 32);
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), 0x0a00);
        // nfgenmsg: family, version, res_id big-endian.
        assert_eq!(&buf[16..20], &[NFPROTO_INET, 0, 0, 0]);
        assert_eq!(&buf[32 + 16..], &[0, 0, 0, 10]);
        let read: Vec<_> = messages(&buf).map(Result::unwrap).collect();
        assert_eq!(read.len(), 2);
        assert_eq!(
            (read[0].kind, read[0].seq, read[0].flags),
            (0x0a00, 7, NLM_F_REQUEST)
        );
        assert_eq!(
            find(&read[0].payload[4..], NFTA_TABLE_NAME),
            Ok(Some(&b"husk\0"[..]))
        );
        assert_eq!((read[1].kind, read[1].seq), (NFNL_MSG_BATCH_END, 8));
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        message(&mut buf, 1, 0, 1, 0, 0, |w| w.put(1, b"abcdef"));
        for cut in 1..buf.len() {
            let _ = messages(&buf[..cut]).count();
            let _ = attrs(&buf[16..cut.max(16)]).count();
        }
        assert!(messages(&buf[..20]).next().unwrap().is_err());
        // An attribute claiming more than there is.
        assert!(attrs(&[200, 0, 1, 0, 1, 2, 3, 4]).next().unwrap().is_err());
        assert!(attrs(&[2, 0, 1, 0]).next().unwrap().is_err());
        assert!(be_uint(&[1, 2]).is_err());
        assert_eq!(string(b"ports\0\0"), "ports");
    }
}
