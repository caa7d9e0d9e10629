//! Checks a pack's bytes against its index: the header's count, every
//! entry's CRC32 and the trailing checksum the index recorded. Together
//! they cover every byte of the pack, at the cost of one sequential read
//! and CRC32 (not a SHA over the whole pack, nor inflating any object).

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use super::index::{PackLayout, PACK_HEADER_LEN};
use super::READ_CHUNK;

/// What is wrong with a pack.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    #[error("it does not start with a version 2 or 3 pack header")]
    Header,
    #[error("its header counts {in_pack} objects, its index {in_index}")]
    Count { in_pack: u32, in_index: usize },
    #[error("the entry at offset {offset} does not match the CRC32 its index records")]
    Entry { offset: u64, position: u32 },
    #[error("its trailing checksum is not the one its index records")]
    Trailer,
    #[error("it is shorter than its index says")]
    Truncated,
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("stopped")]
    Stopped,
}

/// Reads `pack` from its first byte to its end in `READ_CHUNK` reads and
/// checks it against `layout` and the `pack_checksum` its index recorded.
/// `stop` is looked at between reads, so an abandoned check ends soon.
pub fn check_entries(
    mut pack: impl Read,
    layout: &PackLayout,
    pack_checksum: &[u8],
    stop: &AtomicBool,
) -> Result<(), Damage> {
    let mut header = [0u8; PACK_HEADER_LEN as usize];
    pack.read_exact(&mut header).map_err(truncated)?;
    if &header[..4] != b"PACK" || !matches!(be32(&header[4..8]), 2 | 3) {
        return Err(Damage::Header);
    }
    let in_pack = be32(&header[8..12]);
    if in_pack as usize != layout.entries.len() {
        return Err(Damage::Count {
            in_pack,
            in_index: layout.entries.len(),
        });
    }
    let mut buffer = vec![0u8; READ_CHUNK];
    let mut at = PACK_HEADER_LEN; // the file offset of the next byte to sum
    let mut entry = 0; // the entry being summed, in pack order
    let mut crc = crc32fast::Hasher::new();
    let mut trailer = Vec::with_capacity(pack_checksum.len());
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(Damage::Stopped);
        }
        let filled = fill(&mut pack, &mut buffer)?;
        if filled == 0 {
            break;
        }
        let mut chunk = &buffer[..filled];
        while !chunk.is_empty() {
            let Some(current) = layout.entries.get(entry) else {
                // Past the last entry: the trailer (and anything after it).
                trailer.extend_from_slice(chunk);
                break;
            };
            let end = layout.end(entry);
            let take = usize::try_from(end - at).map_or(chunk.len(), |left| left.min(chunk.len()));
            crc.update(&chunk[..take]);
            chunk = &chunk[take..];
            at += take as u64;
            if at == end {
                if std::mem::take(&mut crc).finalize() != current.crc32 {
                    return Err(Damage::Entry {
                        offset: current.offset,
                        position: current.position,
                    });
                }
                entry += 1;
            }
        }
    }
    if entry < layout.entries.len() || trailer.len() < pack_checksum.len() {
        return Err(Damage::Truncated);
    }
    if trailer != pack_checksum {
        return Err(Damage::Trailer);
    }
    Ok(())
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn truncated(error: io::Error) -> Damage {
    match error.kind() {
        io::ErrorKind::UnexpectedEof => Damage::Truncated,
        _ => Damage::Io(error),
    }
}

/// Fills `buffer` as far as the reader goes; 0 at its end.
fn fill(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}
