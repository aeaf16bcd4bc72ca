//! AES-256-GCM with keys derived from the format key, which seals the repository config and
//! `kopia.blobcfg` (FORMAT.md §2.3).

use aes_gcm::aead::{AeadInPlace, KeyInit};

use super::{FORMAT_ENCRYPTION, FormatBlob};
use crate::encryption::{NONCE_LEN, TAG_LEN, derive_key32};
use crate::{Error, Result};

const PURPOSE_AES: &[u8] = b"AES";
const PURPOSE_CHECKSUM: &[u8] = b"CHECKSUM";

/// `(aesKey, aad)` of FORMAT.md §2.3.
pub(super) fn format_aead_keys(
    format_key: &[u8],
    unique_id: &[u8],
) -> Result<([u8; 32], [u8; 32])> {
    Ok((
        derive_key32(format_key, unique_id, PURPOSE_AES)?,
        derive_key32(format_key, unique_id, PURPOSE_CHECKSUM)?,
    ))
}

/// `nonce || AES-256-GCM(aesKey, plaintext, aad)`.
pub(super) fn seal_with_format_key(
    format_key: &[u8],
    unique_id: &[u8],
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>> {
    let (key, aad) = format_aead_keys(format_key, unique_id)?;
    let mut out = Vec::with_capacity(plaintext.len() + NONCE_LEN + TAG_LEN);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = aes_gcm::Aes256Gcm::new((&key).into())
        .encrypt_in_place_detached(
            (&nonce).into(),
            &aad,
            out.get_mut(NONCE_LEN..).unwrap_or_default(),
        )
        .map_err(|_| Error::invalid("plaintext", "too long for AES-GCM"))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens `nonce || ciphertext || tag`; `Ok(None)` when the tag does not verify.
pub(super) fn open_with_format_key(
    format_key: &[u8],
    unique_id: &[u8],
    data: &[u8],
    what: &'static str,
) -> Result<Option<Vec<u8>>> {
    if data.len() < NONCE_LEN + TAG_LEN {
        return Err(Error::corrupt(
            what,
            format!("encrypted payload of {} bytes is too short", data.len()),
        ));
    }
    let (key, aad) = format_aead_keys(format_key, unique_id)?;
    let (nonce, rest) = data.split_at(NONCE_LEN);
    let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut buf = ct.to_vec();
    let ok = aes_gcm::Aes256Gcm::new((&key).into())
        .decrypt_in_place_detached(nonce.into(), &aad, &mut buf, tag.into())
        .is_ok();
    Ok(ok.then_some(buf))
}

pub(super) fn check_outer_encryption(blob: &FormatBlob) -> Result<()> {
    if blob.encryption == FORMAT_ENCRYPTION {
        Ok(())
    } else {
        Err(Error::unsupported(
            "format blob encryption",
            blob.encryption.clone(),
        ))
    }
}
