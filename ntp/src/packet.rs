//! The NTP packet header (RFC 5905 §7.3): 48 bytes, big-endian.
//! Extension fields and a MAC may follow; a client without keys has no
//! use for them and ignores them.

use std::time::Duration;

use crate::timestamp::NtpTimestamp;

/// The header's length, the smallest valid packet.
pub const LEN: usize = 48;

pub const MODE_CLIENT: u8 = 3;
pub const MODE_SERVER: u8 = 4;
/// The version this client speaks; replies of version 3 are accepted too.
pub const VERSION: u8 = 4;
/// Leap indicator 3: the server's clock is not synchronised.
pub const LEAP_UNSYNCHRONISED: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Packet {
    /// 2 bits: 0 none, 1 last minute has 61 s, 2 has 59 s, 3 alarm.
    pub leap: u8,
    /// 3 bits.
    pub version: u8,
    /// 3 bits.
    pub mode: u8,
    /// 0 kiss-o'-death, 1 primary, 2..=15 secondary, 16 unsynchronised.
    pub stratum: u8,
    /// log2 seconds.
    pub poll: i8,
    /// log2 seconds.
    pub precision: i8,
    /// NTP short format: 16.16 seconds.
    pub root_delay: u32,
    /// NTP short format: 16.16 seconds.
    pub root_dispersion: u32,
    /// A kiss code (stratum 0), a source name (stratum 1), or the
    /// upstream server's address (above).
    pub reference_id: [u8; 4],
    pub reference: NtpTimestamp,
    /// Client's transmit timestamp as the server received it (T1).
    pub origin: NtpTimestamp,
    /// When the server received the request (T2).
    pub receive: NtpTimestamp,
    /// When the server sent the reply (T3); in a request, the client's.
    pub transmit: NtpTimestamp,
}

impl Packet {
    /// A client request. Everything but the transmit timestamp is zero,
    /// as RFC 9109 (data minimisation) asks: nothing about this client's
    /// clock goes on the wire, and `transmit` is a random nonce the
    /// server echoes as the reply's origin timestamp.
    pub fn request(transmit: NtpTimestamp) -> Self {
        Self {
            version: VERSION,
            mode: MODE_CLIENT,
            transmit,
            ..Self::default()
        }
    }

    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = (self.leap & 3) << 6 | (self.version & 7) << 3 | (self.mode & 7);
        b[1] = self.stratum;
        b[2] = self.poll as u8;
        b[3] = self.precision as u8;
        b[4..8].copy_from_slice(&self.root_delay.to_be_bytes());
        b[8..12].copy_from_slice(&self.root_dispersion.to_be_bytes());
        b[12..16].copy_from_slice(&self.reference_id);
        b[16..24].copy_from_slice(&self.reference.0.to_be_bytes());
        b[24..32].copy_from_slice(&self.origin.0.to_be_bytes());
        b[32..40].copy_from_slice(&self.receive.0.to_be_bytes());
        b[40..48].copy_from_slice(&self.transmit.0.to_be_bytes());
        b
    }

    /// The header of `bytes`, or `None` when they are too short for one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let b: &[u8; LEN] = bytes.get(..LEN)?.try_into().ok()?;
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let ts_at =
            |i: usize| NtpTimestamp((u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4)));
        Some(Self {
            leap: b[0] >> 6,
            version: (b[0] >> 3) & 7,
            mode: b[0] & 7,
            stratum: b[1],
            poll: b[2] as i8,
            precision: b[3] as i8,
            root_delay: u32_at(4),
            root_dispersion: u32_at(8),
            reference_id: [b[12], b[13], b[14], b[15]],
            reference: ts_at(16),
            origin: ts_at(24),
            receive: ts_at(32),
            transmit: ts_at(40),
        })
    }
}

/// An NTP short-format value (16.16 seconds), to the nanosecond below.
pub fn short_to_duration(value: u32) -> Duration {
    Duration::from_nanos((u64::from(value) * 1_000_000_000) >> 16)
}

/// A duration in NTP short format, saturating at 65535.99998 s.
pub fn duration_to_short(d: Duration) -> u32 {
    let units = (d.as_nanos() << 16) / 1_000_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// A kiss code (or a stratum-1 source name) as text: ASCII up to the
/// first NUL, anything unprintable escaped (the bytes are the server's).
pub fn kiss_code(reference_id: [u8; 4]) -> String {
    reference_id
        .iter()
        .take_while(|&&b| b != 0)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_all_zero_but_its_nonce() {
        let bytes = Packet::request(NtpTimestamp(0x0102_0304_0506_0708)).encode();
        // LI 0, VN 4, mode 3.
        assert_eq!(bytes[0], 0b00_100_011);
        assert!(bytes[1..40].iter().all(|&b| b == 0));
        assert_eq!(bytes[40..], [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn round_trip_and_field_positions() {
        let p = Packet {
            leap: 2,
            version: 3,
            mode: MODE_SERVER,
            stratum: 15,
            poll: 6,
            precision: -20,
            root_delay: 0x0001_8000,
            root_dispersion: 0x0000_4000,
            reference_id: *b"GPS\0",
            reference: NtpTimestamp(1),
            origin: NtpTimestamp(2),
            receive: NtpTimestamp(3),
            transmit: NtpTimestamp(u64::MAX),
        };
        let bytes = p.encode();
        assert_eq!(bytes[0], 0b10_011_100);
        assert_eq!(bytes[3], 0xec);
        assert_eq!(&bytes[12..16], b"GPS\0");
        assert_eq!(bytes[31], 2);
        assert_eq!(Packet::decode(&bytes), Some(p));
        // Extension fields and MACs after the header are ignored.
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(&[0xff; 20]);
        assert_eq!(Packet::decode(&longer), Some(p));
    }

    #[test]
    fn short_packets_are_not_packets() {
        assert_eq!(Packet::decode(&[]), None);
        assert_eq!(Packet::decode(&[0x24; LEN - 1]), None);
        assert!(Packet::decode(&[0; LEN]).is_some());
    }

    #[test]
    fn short_format() {
        assert_eq!(short_to_duration(0x0001_8000), Duration::from_millis(1500));
        assert_eq!(short_to_duration(1), Duration::from_nanos(15_258));
        assert_eq!(short_to_duration(u32::MAX).as_secs(), 65535);
        assert_eq!(duration_to_short(Duration::from_millis(1500)), 0x0001_8000);
        assert_eq!(duration_to_short(Duration::from_secs(1 << 20)), u32::MAX);
    }

    #[test]
    fn kiss_codes() {
        assert_eq!(kiss_code(*b"RATE"), "RATE");
        assert_eq!(kiss_code(*b"GPS\0"), "GPS");
        assert_eq!(kiss_code([b'A', 0x07, b'"', 0]), "A\\x07\\\"");
    }
}
