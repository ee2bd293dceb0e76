//! `gpt_read`'s seeds: disks written by husk-gpt's own writer, as
//! husk-image lays them out (ESP, then husk-data), in `gpt_read`'s input
//! format: flags, the disk's size in sectors, then (LBA, length, bytes)
//! for what the writer wrote.

use std::io::{self, Seek, SeekFrom, Write};

use husk_gpt::{Entry, Guid, Table};

use super::Seed;

const MIB: u64 = 1 << 20;
/// `gpt_read`'s flags.
const SECTOR_4096: u8 = 1;
const FILL_IN_CRCS: u8 = 2;

/// What a writer wrote, and where.
#[derive(Default)]
struct Recorder {
    pos: u64,
    writes: Vec<(u64, Vec<u8>)>,
}

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes.push((self.pos, buf.to_vec()));
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Recorder {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match to {
            SeekFrom::Start(at) => self.pos = at,
            _ => unreachable!("the writer seeks from the start"),
        }
        Ok(self.pos)
    }
}

fn entry(name: &str, type_guid: &str, first: u64, last: u64) -> Entry {
    Entry {
        type_guid: type_guid.parse().unwrap(),
        unique_guid: Guid([name.len() as u8; 16]),
        first_lba: first,
        last_lba: last,
        attributes: 0,
        name: name.into(),
    }
}

/// An 11 MiB image (ESP at 1 MiB, husk-data at 5 MiB), on a disk of
/// `disk_mib` MiB.
fn disk(sector: u64, disk_mib: u64, flags: u8) -> Vec<u8> {
    let per_mib = MIB / sector;
    let table = Table {
        sector_size: sector,
        disk_sectors: 11 * per_mib,
        disk_guid: Guid([7; 16]),
        entries: vec![
            entry("esp", husk_gpt::ESP_TYPE, per_mib, 5 * per_mib - 1),
            entry(
                "husk-data",
                husk_gpt::LINUX_DATA_TYPE,
                5 * per_mib,
                10 * per_mib - 1,
            ),
        ],
    };
    let mut recorder = Recorder::default();
    table.write(&mut recorder).unwrap();
    let mut input = vec![flags];
    input.extend((disk_mib * per_mib).to_le_bytes());
    // Sector by sector, leaving out the zeros (the disk reads them
    // anyway): a seed of a few KiB, not of whole 16 KiB arrays.
    for (offset, bytes) in recorder.writes {
        for (i, data) in bytes.chunks(sector as usize).enumerate() {
            let Some(last) = data.iter().rposition(|&b| b != 0) else {
                continue;
            };
            let data = &data[..=last];
            input.extend((offset / sector + i as u64).to_le_bytes());
            input.extend((data.len() as u16).to_le_bytes());
            input.extend(data);
        }
    }
    input
}

pub fn seeds() -> Vec<Seed> {
    vec![
        ("image", disk(512, 11, 0)),
        ("grown", disk(512, 64, 0)),
        ("grown-4k", disk(4096, 64, SECTOR_4096)),
        ("grown-crcs-filled-in", disk(512, 40, FILL_IN_CRCS)),
    ]
}
