//! Index v2 (FORMAT.md §8.2; kopia `repo/content/index/index_v2.go`).
//!
//! ```text
//! header (17 bytes):
//!   [0]      u8     version = 2
//!   [1]      u8     keySize = 1 + hashLen
//!   [2..4)   u16 BE entrySize, 16..=19
//!   [4..8)   u32 BE entryCount
//!   [8..12)  u32 BE packCount
//!   [12]     u8     formatCount
//!   [13..17) u32 BE baseTimestamp (kopia writes 0; readers add it)
//! entries: entryCount × (key[keySize] || value[entrySize]), sorted by key
//!   value [0..4)   u32 BE timestamp − baseTimestamp
//!         [4..8)   u32 BE bit 31 deleted, bits 0..30 pack offset
//!         [8..11)  u24 BE original length bits 0..23
//!         [11..14) u24 BE packed length bits 0..23
//!         [14..16) u16 BE pack index bits 0..15
//!         [16]     u8     format index            (entrySize >= 17, else 0)
//!         [17]     u8     pack index bits 16..23  (entrySize >= 18)
//!         [18]     u8     original length bits 24..27 << 4 | packed length bits 24..27
//!                                                 (entrySize = 19)
//! pack table: packCount × (u8 name length || u32 BE absolute name offset)
//! format table: formatCount × (u32 BE compression header ID || u8 format version || u8 key ID)
//! extra data: pack blob ID strings, each once, in pack-number order
//! ```
//!
//! Reader tolerance (as kopia): a pack index `>= packCount` reads as pack
//! [`INVALID_PACK_BLOB_ID`]; a format index `>= formatCount` reads as format version `0xFF`,
//! compression `0xFFFF` and key ID `0xFF`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::{INVALID_PACK_BLOB_ID, Info, MAX_KEY_LEN};
use crate::ids::{BlobId, ContentId};
use crate::{Error, Result};

pub(crate) const WHAT: &str = "index v2";

/// Header size in bytes.
pub const HEADER_LEN: usize = 17;
/// Size of one pack-table record.
pub const PACK_INFO_LEN: usize = 5;
/// Size of one format-table record.
pub const FORMAT_INFO_LEN: usize = 6;
/// Smallest value size (no optional bytes).
pub const MIN_ENTRY_SIZE: usize = 16;
/// Largest value size (all optional bytes).
pub const MAX_ENTRY_SIZE: usize = 19;
/// Most format tuples one index can number.
pub const MAX_FORMAT_COUNT: usize = 255;
/// Most distinct packs one index can reference.
pub const MAX_PACK_COUNT: usize = 1 << 24;
/// Most packs addressable without the extended pack-index byte.
pub const MAX_SHORT_PACK_COUNT: usize = 1 << 16;
/// Exclusive upper bound of packed and original lengths.
pub const MAX_CONTENT_LENGTH: u32 = 1 << 28;
/// Lengths at or above this need the high-bits byte.
pub const MAX_SHORT_CONTENT_LENGTH: u32 = 1 << 24;
/// Exclusive upper bound of pack offsets.
pub const MAX_PACK_OFFSET: u32 = 1 << 30;
/// Kopia's bound on `keySize + entrySize`.
const MAX_STRIDE: usize = 256;

const DELETED_FLAG: u32 = 0x8000_0000;
const OFFSET_MASK: u32 = 0x7fff_ffff;

/// Format version reported for an out-of-range format index.
pub const INVALID_FORMAT_VERSION: u8 = 0xFF;
/// Compression header ID reported for an out-of-range format index.
pub const INVALID_COMPRESSION_HEADER_ID: u32 = 0xFFFF;
/// Key ID reported for an out-of-range format index.
pub const INVALID_ENCRYPTION_KEY_ID: u8 = 0xFF;

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be_u24(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some(s.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x)))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decoded and bounds-checked v2 header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub(crate) key_size: usize,
    pub(crate) entry_size: usize,
    pub(crate) entry_count: usize,
    pack_count: usize,
    format_count: usize,
    base_timestamp: u32,
    packs_offset: usize,
    formats_offset: usize,
}

impl Header {
    pub(crate) fn parse(data: &[u8]) -> Result<Self> {
        let bad = |d: String| Error::corrupt(WHAT, d);
        let h = data
            .get(..HEADER_LEN)
            .ok_or_else(|| bad(format!("truncated header ({} bytes)", data.len())))?;
        let field = |v: Option<u32>| v.ok_or_else(|| bad("truncated header".into()));
        let key_size = usize::from(*h.get(1).unwrap_or(&0));
        let entry_size = usize::from(be_u16(h, 2).unwrap_or(0));
        let entry_count = field(be_u32(h, 4))? as usize;
        let pack_count = field(be_u32(h, 8))? as usize;
        let format_count = usize::from(*h.get(12).unwrap_or(&0));
        let base_timestamp = field(be_u32(h, 13))?;

        if key_size <= 1 {
            return Err(bad(format!("invalid key size {key_size}")));
        }
        if !(MIN_ENTRY_SIZE..=MAX_ENTRY_SIZE).contains(&entry_size) {
            return Err(bad(format!("invalid entry size {entry_size}")));
        }
        let stride = key_size + entry_size;
        if stride > MAX_STRIDE {
            return Err(bad(format!("entry stride {stride} too big")));
        }
        if entry_count > 0 && key_size > MAX_KEY_LEN {
            return Err(bad(format!(
                "key size {key_size} exceeds the maximum {MAX_KEY_LEN}"
            )));
        }
        let size_err = || bad(format!("tables exceed the {} index bytes", data.len()));
        let packs_offset = entry_count
            .checked_mul(stride)
            .and_then(|n| n.checked_add(HEADER_LEN))
            .filter(|&end| end <= data.len())
            .ok_or_else(size_err)?;
        let formats_offset = pack_count
            .checked_mul(PACK_INFO_LEN)
            .and_then(|n| n.checked_add(packs_offset))
            .filter(|&end| end <= data.len())
            .ok_or_else(size_err)?;
        formats_offset
            .checked_add(format_count * FORMAT_INFO_LEN)
            .filter(|&end| end <= data.len())
            .ok_or_else(size_err)?;

        let hdr = Header {
            key_size,
            entry_size,
            entry_count,
            pack_count,
            format_count,
            base_timestamp,
            packs_offset,
            formats_offset,
        };
        // Kopia resolves every pack name when it opens an index; do the same checks (bounds,
        // and UTF-8 for us) without keeping the strings.
        for i in 0..pack_count {
            hdr.pack_name(data, i)?;
        }
        Ok(hdr)
    }

    pub(crate) fn stride(&self) -> usize {
        self.key_size + self.entry_size
    }

    pub(crate) fn entry_offset(&self, i: usize) -> Option<usize> {
        if i >= self.entry_count {
            return None;
        }
        i.checked_mul(self.stride())?.checked_add(HEADER_LEN)
    }

    fn pack_name<'d>(&self, data: &'d [u8], i: usize) -> Result<&'d str> {
        let rec = i
            .checked_mul(PACK_INFO_LEN)
            .and_then(|o| o.checked_add(self.packs_offset))
            .and_then(|o| data.get(o..o + PACK_INFO_LEN))
            .ok_or_else(|| Error::corrupt(WHAT, format!("pack record {i} out of range")))?;
        let len = usize::from(*rec.first().unwrap_or(&0));
        let off = be_u32(rec, 1).unwrap_or(u32::MAX) as usize;
        let name = off
            .checked_add(len)
            .and_then(|end| data.get(off..end))
            .ok_or_else(|| {
                Error::corrupt(
                    WHAT,
                    format!("pack name {i} (offset {off}, length {len}) out of range"),
                )
            })?;
        std::str::from_utf8(name)
            .map_err(|_| Error::corrupt(WHAT, format!("pack name {i} is not UTF-8")))
    }

    fn format(&self, data: &[u8], i: usize) -> Option<(u32, u8, u8)> {
        if i >= self.format_count {
            return None;
        }
        let at = self.formats_offset + i * FORMAT_INFO_LEN;
        let rec = data.get(at..at + FORMAT_INFO_LEN)?;
        Some((be_u32(rec, 0)?, *rec.get(4)?, *rec.get(5)?))
    }

    pub(crate) fn decode(&self, data: &[u8], id: ContentId, v: &[u8]) -> Result<Info> {
        let short = || Error::corrupt(WHAT, format!("entry of {id} too short"));
        let ts = be_u32(v, 0).ok_or_else(short)?;
        let off_flags = be_u32(v, 4).ok_or_else(short)?;
        let mut original_length = be_u24(v, 8).ok_or_else(short)?;
        let mut packed_length = be_u24(v, 11).ok_or_else(short)?;
        let mut pack_index = usize::from(be_u16(v, 14).ok_or_else(short)?);
        let format_index = match v.get(16) {
            Some(&f) if self.entry_size > 16 => usize::from(f),
            _ => 0,
        };
        if self.entry_size > 17 {
            pack_index |= usize::from(*v.get(17).ok_or_else(short)?) << 16;
        }
        if self.entry_size > 18 {
            let hi = *v.get(18).ok_or_else(short)?;
            original_length |= u32::from(hi >> 4) << 24;
            packed_length |= u32::from(hi & 0x0f) << 24;
        }
        let (compression_header_id, format_version, encryption_key_id) =
            self.format(data, format_index).unwrap_or((
                INVALID_COMPRESSION_HEADER_ID,
                INVALID_FORMAT_VERSION,
                INVALID_ENCRYPTION_KEY_ID,
            ));
        let pack_blob_id = if pack_index < self.pack_count {
            BlobId::new(self.pack_name(data, pack_index)?)
        } else {
            BlobId::new(INVALID_PACK_BLOB_ID)
        };
        Ok(Info {
            content_id: id,
            pack_blob_id,
            pack_offset: off_flags & OFFSET_MASK,
            packed_length,
            original_length,
            timestamp_seconds: i64::from(ts) + i64::from(self.base_timestamp),
            deleted: off_flags & DELETED_FLAG != 0,
            format_version,
            compression_header_id,
            encryption_key_id,
        })
    }
}

fn invalid(detail: impl Into<String>) -> Error {
    Error::invalid("index v2 entries", detail)
}

/// Serialises entries that are already sorted by key and unique (kopia `buildV2`).
pub(crate) fn build_sorted(sorted: &[Info]) -> Result<Vec<u8>> {
    let first = sorted
        .first()
        .ok_or_else(|| invalid("an empty v2 index cannot be built"))?;

    // Format tuples and packs are numbered in order of first use by the sorted entries.
    let mut formats: Vec<(u32, u8, u8)> = Vec::new();
    let mut format_no: HashMap<(u32, u8, u8), u8> = HashMap::new();
    let mut packs: Vec<&str> = Vec::new();
    let mut pack_no: HashMap<&str, u32> = HashMap::new();
    let (mut max_packed, mut max_original, mut max_offset) = (0u32, 0u32, 0u32);
    for e in sorted {
        let f = (
            e.compression_header_id,
            e.format_version,
            e.encryption_key_id,
        );
        if let Entry::Vacant(slot) = format_no.entry(f) {
            if formats.len() >= MAX_FORMAT_COUNT {
                return Err(invalid(format!(
                    "too many unique formats (max {MAX_FORMAT_COUNT})"
                )));
            }
            slot.insert(formats.len() as u8);
            formats.push(f);
        }
        let p = e.pack_blob_id.as_str();
        if let Entry::Vacant(slot) = pack_no.entry(p) {
            if packs.len() >= MAX_PACK_COUNT {
                return Err(invalid(format!(
                    "too many unique pack IDs (max {MAX_PACK_COUNT})"
                )));
            }
            if p.len() > usize::from(u8::MAX) {
                return Err(invalid(format!("pack blob ID {p:?} longer than 255 bytes")));
            }
            slot.insert(packs.len() as u32);
            packs.push(p);
        }
        max_packed = max_packed.max(e.packed_length);
        max_original = max_original.max(e.original_length);
        max_offset = max_offset.max(e.pack_offset);
    }

    let mut entry_size = MIN_ENTRY_SIZE;
    if formats.len() > 1 {
        entry_size = entry_size.max(17);
    }
    if packs.len() > MAX_SHORT_PACK_COUNT {
        entry_size = entry_size.max(18);
    }
    if max_packed >= MAX_CONTENT_LENGTH || max_original >= MAX_CONTENT_LENGTH {
        return Err(invalid(format!(
            "maximum content length is too high: (packed {max_packed}, original {max_original}, max {MAX_CONTENT_LENGTH})"
        )));
    }
    if max_packed >= MAX_SHORT_CONTENT_LENGTH || max_original >= MAX_SHORT_CONTENT_LENGTH {
        entry_size = MAX_ENTRY_SIZE;
    }
    if max_offset >= MAX_PACK_OFFSET {
        return Err(invalid(format!("pack offset {max_offset} is too high")));
    }
    let key_len = first.content_id.key().len();
    if key_len <= 1 {
        return Err(invalid(format!(
            "invalid key length {key_len} (empty content ID)"
        )));
    }

    // Extra data: the pack names in numbering order; the empty pack ID (if any) adds nothing
    // and points at the start of the extra data, as in kopia.
    let mut name_offsets: Vec<u32> = Vec::with_capacity(packs.len());
    let mut extra_len = 0usize;
    for p in &packs {
        let off = if p.is_empty() { 0 } else { extra_len };
        name_offsets.push(u32::try_from(off).map_err(|_| invalid("index too large"))?);
        extra_len += p.len();
    }
    let extra_start = sorted
        .len()
        .checked_mul(key_len + entry_size)
        .and_then(|n| n.checked_add(HEADER_LEN))
        .and_then(|n| n.checked_add(packs.len() * PACK_INFO_LEN))
        .and_then(|n| n.checked_add(formats.len() * FORMAT_INFO_LEN))
        .filter(|&n| {
            n.checked_add(extra_len)
                .is_some_and(|t| t <= u32::MAX as usize)
        })
        .ok_or_else(|| invalid("index larger than 4 GiB"))?;
    let entry_count = u32::try_from(sorted.len()).map_err(|_| invalid("more than 2^32 entries"))?;

    let mut out = Vec::with_capacity(extra_start + extra_len + super::RANDOM_SUFFIX_LEN);
    out.push(2);
    out.push(key_len as u8);
    out.extend_from_slice(&(entry_size as u16).to_be_bytes());
    out.extend_from_slice(&entry_count.to_be_bytes());
    out.extend_from_slice(&(packs.len() as u32).to_be_bytes());
    out.push(formats.len() as u8);
    out.extend_from_slice(&0u32.to_be_bytes()); // baseTimestamp

    for e in sorted {
        let before = out.len();
        e.content_id.write_key(&mut out);
        if out.len() - before != key_len {
            return Err(invalid(format!(
                "inconsistent key length: {} vs {key_len}",
                out.len() - before
            )));
        }
        let ts = u32::try_from(e.timestamp_seconds).map_err(|_| {
            invalid(format!(
                "timestamp {} of {} outside 0..2^32",
                e.timestamp_seconds, e.content_id
            ))
        })?;
        let pack = pack_no
            .get(e.pack_blob_id.as_str())
            .copied()
            .unwrap_or_default();
        let format = format_no
            .get(&(
                e.compression_header_id,
                e.format_version,
                e.encryption_key_id,
            ))
            .copied()
            .unwrap_or_default();
        let mut v = [0u8; MAX_ENTRY_SIZE];
        v[0..4].copy_from_slice(&ts.to_be_bytes());
        let flags = if e.deleted { DELETED_FLAG } else { 0 };
        v[4..8].copy_from_slice(&(e.pack_offset | flags).to_be_bytes());
        v[8..11].copy_from_slice(&e.original_length.to_be_bytes()[1..4]);
        v[11..14].copy_from_slice(&e.packed_length.to_be_bytes()[1..4]);
        v[14..16].copy_from_slice(&(pack as u16).to_be_bytes());
        v[16] = format;
        v[17] = (pack >> 16) as u8;
        v[18] = ((e.original_length >> 24) << 4) as u8 | (e.packed_length >> 24) as u8;
        out.extend_from_slice(v.get(..entry_size).unwrap_or(&v));
    }
    for (p, off) in packs.iter().zip(&name_offsets) {
        out.push(p.len() as u8);
        out.extend_from_slice(&(extra_start as u32 + off).to_be_bytes());
    }
    for (compression, version, key_id) in &formats {
        out.extend_from_slice(&compression.to_be_bytes());
        out.push(*version);
        out.push(*key_id);
    }
    for p in &packs {
        out.extend_from_slice(p.as_bytes());
    }
    Ok(out)
}
