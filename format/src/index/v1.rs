//! Index v1, used by format-version-1 repositories (FORMAT.md §8.1; kopia
//! `repo/content/index/index_v1.go`).
//!
//! ```text
//! header (8 bytes):
//!   [0]      u8     version = 1
//!   [1]      u8     keySize = 1 + hashLen (0xFF in an empty index)
//!   [2..4)   u16 BE entrySize = 20
//!   [4..8)   u32 BE entryCount
//! entries: entryCount × (key[keySize] || value[20]), sorted by key
//!   value [0..6)   u48 BE timestamp seconds
//!         [6]      u8     format version
//!         [7]      u8     length of the pack blob ID
//!         [8..12)  u32 BE absolute offset of the pack blob ID string
//!         [12..16) u32 BE bit 31 deleted, bits 0..30 pack offset
//!         [16..20) u32 BE packed length
//! extra data: pack blob ID strings, each once, in order of first use
//! ```
//!
//! v1 stores neither original length nor compression: readers report
//! `packed − 28` ([`ENCRYPTION_OVERHEAD`], saturating at 0) and compression 0. As in kopia, a
//! pack name that lies outside the index reads as [`INVALID_PACK_BLOB_ID`].

use std::collections::HashMap;

use super::{INVALID_PACK_BLOB_ID, Info, MAX_KEY_LEN};
use crate::ids::{BlobId, ContentId};
use crate::{Error, Result};

pub(crate) const WHAT: &str = "index v1";

/// Header size in bytes.
pub const HEADER_LEN: usize = 8;
/// Value size of every v1 entry.
pub const ENTRY_SIZE: usize = 20;
/// Per-content overhead of the AEAD schemes kopia supports (12-byte nonce + 16-byte tag);
/// `original length = packed length − overhead` for v1 entries.
pub const ENCRYPTION_OVERHEAD: u32 = 28;
/// Key size byte written for an index without entries.
pub const UNKNOWN_KEY_SIZE: u8 = 0xFF;

const DELETED_FLAG: u32 = 0x8000_0000;
const OFFSET_MASK: u32 = 0x7fff_ffff;
const MAX_TIMESTAMP: i64 = (1 << 48) - 1;

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Decoded and bounds-checked v1 header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub(crate) key_size: usize,
    pub(crate) entry_count: usize,
}

impl Header {
    pub(crate) fn parse(data: &[u8]) -> Result<Self> {
        let bad = |d: String| Error::corrupt(WHAT, d);
        let h = data
            .get(..HEADER_LEN)
            .ok_or_else(|| bad(format!("truncated header ({} bytes)", data.len())))?;
        let key_size = usize::from(*h.get(1).unwrap_or(&0));
        let entry_size = usize::from(u16::from_be_bytes([
            *h.get(2).unwrap_or(&0),
            *h.get(3).unwrap_or(&0),
        ]));
        let entry_count = be_u32(h, 4).ok_or_else(|| bad("truncated header".into()))? as usize;
        if key_size <= 1 {
            return Err(bad(format!("invalid key size {key_size}")));
        }
        if entry_count > 0 {
            if entry_size != ENTRY_SIZE {
                return Err(bad(format!("invalid entry size {entry_size}")));
            }
            if key_size > MAX_KEY_LEN {
                return Err(bad(format!(
                    "key size {key_size} exceeds the maximum {MAX_KEY_LEN}"
                )));
            }
            entry_count
                .checked_mul(key_size + ENTRY_SIZE)
                .and_then(|n| n.checked_add(HEADER_LEN))
                .filter(|&end| end <= data.len())
                .ok_or_else(|| bad(format!("entries exceed the {} index bytes", data.len())))?;
        }
        Ok(Header {
            key_size,
            entry_count,
        })
    }

    pub(crate) fn stride(&self) -> usize {
        self.key_size + ENTRY_SIZE
    }

    pub(crate) fn entry_offset(&self, i: usize) -> Option<usize> {
        if i >= self.entry_count {
            return None;
        }
        i.checked_mul(self.stride())?.checked_add(HEADER_LEN)
    }

    pub(crate) fn decode(&self, data: &[u8], id: ContentId, v: &[u8]) -> Result<Info> {
        let v: &[u8; ENTRY_SIZE] = v
            .try_into()
            .map_err(|_| Error::corrupt(WHAT, format!("entry of {id} has the wrong size")))?;
        let [
            t0,
            t1,
            t2,
            t3,
            t4,
            t5,
            format_version,
            name_len,
            n0,
            n1,
            n2,
            n3,
            o0,
            o1,
            o2,
            o3,
            p0,
            p1,
            p2,
            p3,
        ] = *v;
        let ts = i64::from_be_bytes([0, 0, t0, t1, t2, t3, t4, t5]);
        let name_off = u32::from_be_bytes([n0, n1, n2, n3]) as usize;
        let off_flags = u32::from_be_bytes([o0, o1, o2, o3]);
        let packed_length = u32::from_be_bytes([p0, p1, p2, p3]);
        let pack_blob_id = match name_off
            .checked_add(usize::from(name_len))
            .and_then(|end| data.get(name_off..end))
        {
            Some(name) => BlobId::new(
                std::str::from_utf8(name)
                    .map_err(|_| Error::corrupt(WHAT, format!("pack name of {id} is not UTF-8")))?,
            ),
            None => BlobId::new(INVALID_PACK_BLOB_ID),
        };
        Ok(Info {
            content_id: id,
            pack_blob_id,
            pack_offset: off_flags & OFFSET_MASK,
            packed_length,
            original_length: packed_length.saturating_sub(ENCRYPTION_OVERHEAD),
            timestamp_seconds: ts,
            deleted: off_flags & DELETED_FLAG != 0,
            format_version,
            compression_header_id: 0,
            encryption_key_id: 0,
        })
    }
}

fn invalid(detail: impl Into<String>) -> Error {
    Error::invalid("index v1 entries", detail)
}

/// Serialises entries that are already sorted by key and unique (kopia `buildV1`).
pub(crate) fn build_sorted(sorted: &[Info]) -> Result<Vec<u8>> {
    let key_len = match sorted.first() {
        Some(e) => e.content_id.key().len(),
        None => usize::from(UNKNOWN_KEY_SIZE),
    };
    if key_len <= 1 {
        return Err(invalid(format!(
            "invalid key length {key_len} (empty content ID)"
        )));
    }

    let mut name_offsets: HashMap<&str, u32> = HashMap::new();
    let mut names: Vec<&str> = Vec::new();
    let mut extra_len = 0usize;
    for e in sorted {
        let p = e.pack_blob_id.as_str();
        if !p.is_empty() && !name_offsets.contains_key(p) {
            let off = u32::try_from(extra_len).map_err(|_| invalid("index larger than 4 GiB"))?;
            name_offsets.insert(p, off);
            names.push(p);
            extra_len += p.len();
        }
    }
    let extra_start = sorted
        .len()
        .checked_mul(key_len + ENTRY_SIZE)
        .and_then(|n| n.checked_add(HEADER_LEN))
        .filter(|&n| {
            n.checked_add(extra_len)
                .is_some_and(|t| t <= u32::MAX as usize)
        })
        .ok_or_else(|| invalid("index larger than 4 GiB"))?;
    let entry_count = u32::try_from(sorted.len()).map_err(|_| invalid("more than 2^32 entries"))?;

    let mut out = Vec::with_capacity(extra_start + extra_len + super::RANDOM_SUFFIX_LEN);
    out.push(1);
    out.push(key_len as u8);
    out.extend_from_slice(&(ENTRY_SIZE as u16).to_be_bytes());
    out.extend_from_slice(&entry_count.to_be_bytes());

    for e in sorted {
        let id = e.content_id;
        let before = out.len();
        id.write_key(&mut out);
        if out.len() - before != key_len {
            return Err(invalid(format!(
                "inconsistent key length: {} vs {key_len}",
                out.len() - before
            )));
        }
        if e.compression_header_id != 0 {
            return Err(invalid(format!(
                "{id}: compression not supported in index v1"
            )));
        }
        if e.encryption_key_id != 0 {
            return Err(invalid(format!(
                "{id}: encryption key ID not supported in index v1"
            )));
        }
        let pack = e.pack_blob_id.as_str();
        if pack.is_empty() {
            return Err(invalid(format!("empty pack blob ID for {id}")));
        }
        let name_len = u8::try_from(pack.len())
            .map_err(|_| invalid(format!("pack blob ID {pack:?} longer than 255 bytes")))?;
        if !(0..=MAX_TIMESTAMP).contains(&e.timestamp_seconds) {
            return Err(invalid(format!(
                "{id}: timestamp {} outside 0..2^48",
                e.timestamp_seconds
            )));
        }
        if e.pack_offset & DELETED_FLAG != 0 {
            return Err(invalid(format!(
                "{id}: pack offset {} too high",
                e.pack_offset
            )));
        }
        let ts_and_flags = ((e.timestamp_seconds as u64) << 16)
            | (u64::from(e.format_version) << 8)
            | u64::from(name_len);
        let name_off = extra_start as u32 + name_offsets.get(pack).copied().unwrap_or_default();
        let off_flags = e.pack_offset | if e.deleted { DELETED_FLAG } else { 0 };
        out.extend_from_slice(&ts_and_flags.to_be_bytes());
        out.extend_from_slice(&name_off.to_be_bytes());
        out.extend_from_slice(&off_flags.to_be_bytes());
        out.extend_from_slice(&e.packed_length.to_be_bytes());
    }
    for p in &names {
        out.extend_from_slice(p.as_bytes());
    }
    Ok(out)
}
