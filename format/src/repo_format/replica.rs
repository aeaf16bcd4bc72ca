//! The format-blob replica at the start of every format-v1 pack (FORMAT.md §7.2).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Error, Result};

const REPLICA_HMAC_KEY: &[u8] = b"kopia-repository";
const REPLICA_MAX_LEN: usize = 65000;
const REPLICA_SCAN_LEN: usize = 65536;

fn replica_mac(data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(REPLICA_HMAC_KEY)
        .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
    m.update(data);
    m.finalize().into_bytes().into()
}

/// `len16LE || bytes || HMAC-SHA256("kopia-repository", bytes) || len16LE` with
/// `len = bytes.len() + 32`, written at the start of every format-v1 pack.
pub fn format_blob_replica(bytes: &[u8]) -> Result<Vec<u8>> {
    let l = bytes.len() + 32;
    if l > REPLICA_MAX_LEN {
        return Err(Error::invalid(
            "format blob replica",
            format!("format blob too big: {l} bytes"),
        ));
    }
    let len = (l as u16).to_le_bytes();
    let mut out = Vec::with_capacity(l + 4);
    out.extend_from_slice(&len);
    out.extend_from_slice(bytes);
    out.extend_from_slice(&replica_mac(bytes));
    out.extend_from_slice(&len);
    Ok(out)
}

fn verify_replica(b: &[u8]) -> Option<Vec<u8>> {
    let split = b.len().checked_sub(32)?;
    let (data, mac) = b.split_at(split);
    // Not secret; plain comparison is fine.
    (replica_mac(data) == mac).then(|| data.to_vec())
}

/// Recovers a format-blob replica from the start or the end of `pack_bytes` (kopia
/// `RecoverFormatBlob`): looks at the first and last 64 KiB.
pub fn find_format_blob_replica(pack_bytes: &[u8]) -> Option<Vec<u8>> {
    let n = pack_bytes.len().min(REPLICA_SCAN_LEN);
    if n <= 4 {
        return None;
    }
    let prefix = pack_bytes.get(..n)?;
    if let [a, b, ..] = prefix {
        let l = usize::from(u16::from_le_bytes([*a, *b]));
        if l <= REPLICA_MAX_LEN && l + 2 < prefix.len() {
            if let Some(found) = prefix.get(2..2 + l).and_then(verify_replica) {
                return Some(found);
            }
        }
    }
    let suffix = pack_bytes.get(pack_bytes.len() - n..)?;
    if let [.., a, b] = suffix {
        let l = usize::from(u16::from_le_bytes([*a, *b]));
        if l <= REPLICA_MAX_LEN && l + 2 < suffix.len() {
            let end = suffix.len() - 2;
            if let Some(found) = suffix.get(end - l..end).and_then(verify_replica) {
                return Some(found);
            }
        }
    }
    None
}
