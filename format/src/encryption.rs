//! Content encryption, key derivation and blob crypto (FORMAT.md §3, §5; kopia
//! `repo/encryption`, `internal/crypto`, `internal/blobcrypto`).
//!
//! Layout of every encrypted content or blob:
//!
//! ```text
//! nonce(12) || AEAD-ciphertext(plaintext) || tag(16)      additional data = IV
//! key = HMAC-SHA256(KDS, IV),  KDS = HKDF-SHA256(ikm = masterKey, salt = "encryption", info = "")
//! ```
//!
//! The IV is the last 16 bytes of the content hash (contents), the IV encoded in the blob name
//! (blob crypto), or the full hash of a pack's local index. Nonces are passed in by the caller
//! (this crate draws no random numbers).

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::aead;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::hashing::Hasher;
use crate::ids::BlobId;
use crate::{Error, Result};

/// Length of the random nonce that prefixes every ciphertext.
pub const NONCE_LEN: usize = 12;
/// Length of the AEAD authentication tag at the end of every ciphertext.
pub const TAG_LEN: usize = 16;
/// Bytes added by encryption: nonce + tag.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Salt of the content key-derivation secret (purpose-as-salt convention, FORMAT.md §3).
const CONTENT_KDS_SALT: &[u8] = b"encryption";

/// Names of encryption schemes that kopia removed in v0.9.0 (not authenticated).
const REMOVED_ALGORITHMS: [&str; 10] = [
    "NONE",
    "AES-128-CTR",
    "AES-192-CTR",
    "AES-256-CTR",
    "AES128-CTR",
    "AES192-CTR",
    "AES256-CTR",
    "SALSA20",
    "SALSA20-HMAC",
    "XCHACHA20",
];

/// A content encryption algorithm, named exactly as in kopia's `encryption` config field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum EncryptionAlgorithm {
    /// `AES256-GCM-HMAC-SHA256` (kopia's default).
    #[default]
    Aes256GcmHmacSha256,
    /// `CHACHA20-POLY1305-HMAC-SHA256`.
    ChaCha20Poly1305HmacSha256,
}

impl EncryptionAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [EncryptionAlgorithm; 2] = [
        EncryptionAlgorithm::Aes256GcmHmacSha256,
        EncryptionAlgorithm::ChaCha20Poly1305HmacSha256,
    ];

    /// Kopia's name of the algorithm.
    pub fn name(self) -> &'static str {
        match self {
            EncryptionAlgorithm::Aes256GcmHmacSha256 => "AES256-GCM-HMAC-SHA256",
            EncryptionAlgorithm::ChaCha20Poly1305HmacSha256 => "CHACHA20-POLY1305-HMAC-SHA256",
        }
    }
}

impl fmt::Display for EncryptionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EncryptionAlgorithm {
    type Err = Error;

    /// Parses kopia's name. Historical non-AEAD names (removed in kopia v0.9.0) and unknown
    /// names are [`Error::Unsupported`].
    fn from_str(s: &str) -> Result<Self> {
        if let Some(a) = EncryptionAlgorithm::ALL.into_iter().find(|a| a.name() == s) {
            return Ok(a);
        }
        if REMOVED_ALGORITHMS.contains(&s) || s.contains("CTR") || s.starts_with("SALSA20") {
            return Err(Error::unsupported(
                "encryption algorithm",
                format!("{s} (non-authenticated scheme removed in kopia v0.9.0)"),
            ));
        }
        Err(Error::unsupported("encryption algorithm", s))
    }
}

/// HKDF-SHA256 with the purpose as `info` (kopia `crypto.DeriveKeyFromMasterKey`):
/// `HKDF(ikm = master, salt, info = purpose, len)`.
///
/// Fails for an empty master key (as kopia does) or `len > 8160`.
pub fn derive_key(master: &[u8], salt: &[u8], purpose: &[u8], len: usize) -> Result<Vec<u8>> {
    if master.is_empty() {
        return Err(Error::invalid("master key", "empty key"));
    }
    let mut out = vec![0u8; len];
    hkdf::Hkdf::<Sha256>::new(Some(salt), master)
        .expand(purpose, &mut out)
        .map_err(|_| Error::invalid("derived key length", format!("{len} bytes")))?;
    Ok(out)
}

/// [`derive_key`] for the common 32-byte case.
pub fn derive_key32(master: &[u8], salt: &[u8], purpose: &[u8]) -> Result<[u8; 32]> {
    if master.is_empty() {
        return Err(Error::invalid("master key", "empty key"));
    }
    let mut out = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(Some(salt), master)
        .expand(purpose, &mut out)
        .map_err(|_| Error::invalid("derived key length", "32 bytes"))?;
    Ok(out)
}

/// The content AEAD of a repository: derives a per-IV key from the master key and seals or
/// opens `nonce || ciphertext || tag`. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct ContentCipher {
    alg: EncryptionAlgorithm,
    /// HMAC-SHA256 keyed with KDS; cloned per content to derive the content key.
    kds_mac: Hmac<Sha256>,
}

impl fmt::Debug for ContentCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("ContentCipher")
            .field("alg", &self.alg)
            .finish()
    }
}

impl ContentCipher {
    /// Builds the cipher from the repository `masterKey`
    /// (`KDS = HKDF(masterKey, salt = "encryption", info = "", 32)`).
    pub fn new(alg: EncryptionAlgorithm, master_key: &[u8]) -> Result<ContentCipher> {
        let mut kds = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(Some(CONTENT_KDS_SALT), master_key)
            .expand(&[], &mut kds)
            .map_err(|_| Error::invalid("content key", "HKDF expand failed"))?;
        let kds_mac = <Hmac<Sha256> as Mac>::new_from_slice(&kds)
            .map_err(|_| Error::invalid("content key", "invalid HMAC key"))?;
        Ok(ContentCipher { alg, kds_mac })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> EncryptionAlgorithm {
        self.alg
    }

    /// Bytes added by encryption (28 for both algorithms).
    pub fn overhead(&self) -> usize {
        OVERHEAD
    }

    /// The per-content AEAD key `HMAC-SHA256(KDS, iv)`.
    fn content_key(&self, iv: &[u8]) -> [u8; 32] {
        let mut m = self.kds_mac.clone();
        m.update(iv);
        m.finalize().into_bytes().into()
    }

    /// Encrypts `plaintext` under `iv` with the caller's random `nonce`; returns
    /// `nonce || ciphertext || tag`.
    ///
    /// Fails only for plaintexts beyond the AEAD limit (64 GiB for AES-GCM).
    pub fn encrypt(&self, iv: &[u8], plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        self.encrypt_into(iv, plaintext, nonce, &mut out)?;
        Ok(out)
    }

    /// Like [`ContentCipher::encrypt`], appending to `out` (lets callers reuse buffers).
    pub fn encrypt_into(
        &self,
        iv: &[u8],
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let start = out.len();
        out.reserve(plaintext.len() + OVERHEAD);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let key = self.content_key(iv);
        let body = out
            .get_mut(start + NONCE_LEN..)
            .ok_or_else(|| Error::invalid("encryption", "buffer"))?;
        let tag = seal_in_place(self.alg, &key, &nonce, iv, body);
        match tag {
            Ok(tag) => {
                out.extend_from_slice(&tag);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// Encrypts in place: `buf` holds [`NONCE_LEN`] bytes of room followed by the plaintext;
    /// the room receives `nonce`, the plaintext is sealed and the tag appended, giving the
    /// same `nonce || ciphertext || tag` as [`ContentCipher::encrypt`].
    pub fn encrypt_in_place(
        &self,
        iv: &[u8],
        buf: &mut Vec<u8>,
        nonce: [u8; NONCE_LEN],
    ) -> Result<()> {
        let (room, body) = buf
            .split_at_mut_checked(NONCE_LEN)
            .ok_or_else(|| Error::invalid("encryption", "buffer shorter than the nonce"))?;
        room.copy_from_slice(&nonce);
        let key = self.content_key(iv);
        let tag = seal_in_place(self.alg, &key, &nonce, iv, body)?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    /// Decrypts `nonce || ciphertext || tag` stored under `iv`.
    ///
    /// [`Error::Corrupt`] if `data` is shorter than the overhead, [`Error::Decrypt`] if the tag
    /// does not verify (wrong key, wrong IV or tampered bytes).
    pub fn decrypt(&self, iv: &[u8], data: &[u8]) -> Result<Vec<u8>> {
        self.decrypt_described(iv, data, || format!("content with IV {}", hex::encode(iv)))
    }

    /// Like [`ContentCipher::decrypt`], reusing `data`'s buffer for the plaintext (no
    /// allocation; the nonce is shifted out and the tag cut off).
    pub fn decrypt_in_place(&self, iv: &[u8], mut data: Vec<u8>) -> Result<Vec<u8>> {
        if data.len() < OVERHEAD {
            return Err(Error::corrupt(
                "encrypted payload",
                format!(
                    "{} bytes is shorter than the {OVERHEAD}-byte overhead",
                    data.len()
                ),
            ));
        }
        let tag_at = data.len() - TAG_LEN;
        let key = self.content_key(iv);
        let (head, tag) = data.split_at_mut(tag_at);
        let (nonce, body) = head.split_at_mut(NONCE_LEN);
        open_in_place(self.alg, &key, nonce, iv, body, tag).map_err(|()| Error::Decrypt {
            what: format!("content with IV {}", hex::encode(iv)),
        })?;
        data.truncate(tag_at);
        data.drain(..NONCE_LEN);
        Ok(data)
    }

    /// [`ContentCipher::decrypt`] with a caller-provided description for the error.
    fn decrypt_described(
        &self,
        iv: &[u8],
        data: &[u8],
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>> {
        if data.len() < OVERHEAD {
            return Err(Error::corrupt(
                "encrypted payload",
                format!(
                    "{} bytes is shorter than the {OVERHEAD}-byte overhead",
                    data.len()
                ),
            ));
        }
        let (nonce, rest) = data.split_at(NONCE_LEN);
        let (ct, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut buf = ct.to_vec();
        let key = self.content_key(iv);
        open_in_place(self.alg, &key, nonce, iv, &mut buf, tag)
            .map_err(|()| Error::Decrypt { what: what() })?;
        Ok(buf)
    }
}

/// The AEAD of `alg` keyed with `key` (aws-lc: AES-GCM with AES-NI/VAES and carry-less
/// multiplication, ChaCha20-Poly1305 with SIMD; several times faster than the portable
/// implementations on the hot path of every backup and restore).
fn aead_key(alg: EncryptionAlgorithm, key: &[u8; 32]) -> Result<aead::LessSafeKey> {
    let algorithm = match alg {
        EncryptionAlgorithm::Aes256GcmHmacSha256 => &aead::AES_256_GCM,
        EncryptionAlgorithm::ChaCha20Poly1305HmacSha256 => &aead::CHACHA20_POLY1305,
    };
    let key = aead::UnboundKey::new(algorithm, key)
        .map_err(|_| Error::invalid("content key", "rejected by the AEAD"))?;
    Ok(aead::LessSafeKey::new(key))
}

/// Seals `body` in place; returns the tag.
pub(crate) fn seal_in_place(
    alg: EncryptionAlgorithm,
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    body: &mut [u8],
) -> Result<[u8; TAG_LEN]> {
    let tag = aead_key(alg, key)?
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(*nonce),
            aead::Aad::from(aad),
            body,
        )
        .map_err(|_| Error::invalid("plaintext", "too long for the AEAD"))?;
    tag.as_ref()
        .try_into()
        .map_err(|_| Error::invalid("AEAD tag", "not 16 bytes"))
}

/// Opens `body` in place with the detached `tag`; `Err(())` on authentication failure.
pub(crate) fn open_in_place(
    alg: EncryptionAlgorithm,
    key: &[u8; 32],
    nonce: &[u8],
    aad: &[u8],
    body: &mut [u8],
    tag: &[u8],
) -> std::result::Result<(), ()> {
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| ())?;
    if tag.len() != TAG_LEN {
        return Err(());
    }
    aead_key(alg, key)
        .map_err(|_| ())?
        .open_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            tag,
            body,
        )
        .map(|_| ())
        .map_err(|_| ())
}

/// The IV of a blob-crypto blob: hex-decode of the last 32 hex characters of the blob ID up to
/// (not including) its first `-` (kopia `blobcrypto.getIndexBlobIV`).
pub fn blob_iv_from_id(blob_id: &str) -> Result<[u8; 16]> {
    let head = blob_id.split('-').next().unwrap_or(blob_id);
    let bad = |d: &str| Error::invalid("blob ID", format!("{blob_id:?}: {d}"));
    let hex_part = head
        .len()
        .checked_sub(32)
        .and_then(|start| head.get(start..))
        .ok_or_else(|| bad("too short to hold a 128-bit IV"))?;
    let mut iv = [0u8; 16];
    hex::decode_to_slice(hex_part, &mut iv).map_err(|_| bad("IV part is not hex"))?;
    Ok(iv)
}

/// Blob crypto (FORMAT.md §5.3): hashes `plaintext`, names the blob
/// `prefix + hex(hash) [+ "-" + suffix]` and encrypts under the IV taken from that name.
/// An empty suffix counts as none.
pub fn encrypt_blob(
    hasher: &Hasher,
    cipher: &ContentCipher,
    prefix: &str,
    suffix: Option<&str>,
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<(BlobId, Vec<u8>)> {
    let hash = hasher.hash(plaintext);
    let mut id = String::with_capacity(prefix.len() + 2 * hash.len() + 40);
    id.push_str(prefix);
    id.push_str(&hash.to_hex());
    if let Some(s) = suffix.filter(|s| !s.is_empty()) {
        id.push('-');
        id.push_str(s);
    }
    let iv = blob_iv_from_id(&id)?;
    let data = cipher.encrypt(&iv, plaintext, nonce)?;
    Ok((BlobId::new(id), data))
}

/// Decrypts a blob-crypto blob, re-deriving the IV from its name (a renamed blob fails with
/// [`Error::Decrypt`]).
pub fn decrypt_blob(cipher: &ContentCipher, blob_id: &str, data: &[u8]) -> Result<Vec<u8>> {
    let iv = blob_iv_from_id(blob_id)?;
    cipher.decrypt_described(&iv, data, || format!("blob {blob_id}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::hashing::HashAlgorithm;
    use proptest::prelude::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn master() -> Vec<u8> {
        (0x20u8..0x40).collect()
    }

    fn secret() -> Vec<u8> {
        (0u8..32).collect()
    }

    fn nonce(s: &str) -> [u8; 12] {
        unhex(s).try_into().unwrap()
    }

    // TEST-VECTORS.md §V-KDF (kopia internal/crypto/key_derivation_test.go).
    #[test]
    fn v_kdf() {
        let k = derive_key(
            b"ABCDEFGHIJKLMNOP",
            b"0123456789012345",
            b"the-test-purpose",
            32,
        )
        .unwrap();
        assert_eq!(
            hex::encode(&k),
            "828769ee8969bc37f11dbaa32838f8db6c19daa6e3ae5f5eed2da2d94d8faddb"
        );
        let k32 = derive_key32(
            b"ABCDEFGHIJKLMNOP",
            b"0123456789012345",
            b"the-test-purpose",
        )
        .unwrap();
        assert_eq!(k32.as_slice(), k.as_slice());
        assert!(derive_key(b"", b"salt", b"p", 32).is_err());
        assert!(derive_key(b"k", b"salt", b"p", 255 * 32 + 1).is_err());
    }

    // The KDS of the common [derived] keys (TEST-VECTORS.md header table).
    #[test]
    fn kds_of_common_master_key() {
        let mut kds = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(Some(b"encryption"), &master())
            .expand(&[], &mut kds)
            .unwrap();
        assert_eq!(
            hex::encode(kds),
            "49cbbd8ec38e25389b29de48aa0a383cb3aa37e0e2aa4e02e75c7894aebfacce"
        );
    }

    // TEST-VECTORS.md §V-ENC (kopia repo/encryption/encryption_test.go TestCiphertextSamples).
    #[test]
    fn v_enc_decrypt() {
        let mk = b"01234567890123456789012345678901";
        let rows = [
            (
                EncryptionAlgorithm::Aes256GcmHmacSha256,
                &b"aabbccddeeffgghhiijjkkllmmnnoopp"[..],
                &b"foo"[..],
                "e43ba07f85a6d70c5f1102ca06cf19c597e5f91e527b21f00fb76e8bec3fd1",
            ),
            (
                EncryptionAlgorithm::ChaCha20Poly1305HmacSha256,
                b"aabbccddeeffgghhiijjkkllmmnnoopp",
                b"foo",
                "118359f3d4d589d939efbbc3168ae4c77c51bcebce6845fe6ef5d11342faa6",
            ),
            (
                EncryptionAlgorithm::Aes256GcmHmacSha256,
                b"00000000000000000000000000000000",
                b"quick brown fox jumps over the lazy dog",
                "eaad755a238f1daa4052db2e5ccddd934790b6cca415b3ccfd46ac5746af33d9d30f4400ffa9eb3a64fb1ce21b888c12c043bf6787d4a5c15ad10f21f6a6027ee3afe0",
            ),
            (
                EncryptionAlgorithm::ChaCha20Poly1305HmacSha256,
                b"00000000000000000000000000000000",
                b"quick brown fox jumps over the lazy dog",
                "836d2ba87892711077adbdbe1452d3b2c590bbfdf6fd3387dc6810220a32ec19de862e1a4f865575e328424b5f178afac1b7eeff11494f719d119b7ebb924d1d0846a3",
            ),
        ];
        for (alg, iv, plain, ct) in rows {
            let c = ContentCipher::new(alg, mk).unwrap();
            let ct = unhex(ct);
            assert_eq!(c.decrypt(iv, &ct).unwrap(), plain, "{alg}");
            // Re-encrypting with the same nonce reproduces the sample byte for byte.
            let n: [u8; 12] = ct[..12].try_into().unwrap();
            assert_eq!(c.encrypt(iv, plain, n).unwrap(), ct, "{alg}");
            // Any flipped byte fails authentication.
            for i in [0, 12, ct.len() - 1] {
                let mut bad = ct.clone();
                bad[i] ^= 1;
                assert!(matches!(c.decrypt(iv, &bad), Err(Error::Decrypt { .. })));
            }
            // A different IV (key + AD) fails too.
            assert!(matches!(c.decrypt(b"x", &ct), Err(Error::Decrypt { .. })));
        }
    }

    // TEST-VECTORS.md §V-CONTENT.
    #[test]
    fn v_content_encrypt() {
        let hasher = Hasher::new(HashAlgorithm::Blake2b256_128, &secret()).unwrap();
        let id = hasher.content_id(None, b"hello kopia").unwrap();
        assert_eq!(id.to_string(), "4535fcbe761df7c62b5da83f8ba84165");
        assert_eq!(hex::encode(id.iv()), "4535fcbe761df7c62b5da83f8ba84165");
        let n = nonce("909192939495969798999a9b");

        let aes = ContentCipher::new(EncryptionAlgorithm::Aes256GcmHmacSha256, &master()).unwrap();
        assert_eq!(
            hex::encode(aes.content_key(id.iv())),
            "6d25ac6c69dcea967153528d890710a516a18642f33f7fcce9de884bcb7662ee"
        );
        let payload = aes.encrypt(id.iv(), b"hello kopia", n).unwrap();
        assert_eq!(
            hex::encode(&payload),
            "909192939495969798999a9b6d785a36e4a9ce5d82d2e3f5cb9c5a447e3c4d2dcc9faaa63104ab"
        );
        assert_eq!(aes.decrypt(id.iv(), &payload).unwrap(), b"hello kopia");

        let cc =
            ContentCipher::new(EncryptionAlgorithm::ChaCha20Poly1305HmacSha256, &master()).unwrap();
        let payload = cc.encrypt(id.iv(), b"hello kopia", n).unwrap();
        assert_eq!(
            hex::encode(&payload),
            "909192939495969798999a9b8192d6d91263352cab347b14bca2089786771b0acc9f8e1be72403"
        );
        assert_eq!(cc.decrypt(id.iv(), &payload).unwrap(), b"hello kopia");
    }

    // TEST-VECTORS.md §V-CONTENT, prefixed + gzip-compressed directory content.
    #[test]
    fn v_content_prefixed_compressed() {
        let hasher = Hasher::new(HashAlgorithm::Blake2b256_128, &secret()).unwrap();
        let json = b"{\"stream\":\"kopia:directory\",\"entries\":[],\"summary\":{\"size\":0,\"files\":0,\"symlinks\":0,\"dirs\":1,\"maxTime\":\"2024-05-06T07:08:09.12Z\",\"numFailed\":0}}\n";
        let id = hasher.content_id(Some(b'k'), json).unwrap();
        assert_eq!(id.to_string(), "k32dfecc64e9c4d951dac1feb8be75376");
        let stored = unhex(
            "000010001f8b0800000000000203254d4b0ac23010dd7b8cb74e651afcce013c41578a8b60230cedb492a4602dbdbb23eedeff2dc825c5a06074e34b02b792e2a38c6986431c4a9298c1b7bb439e5483c9bc20cb2782c9e129fdcf369467ed65e8fec4360cd40e1ade8da865e1c9ef2ada577468e8c874623a6f6b7fb59361d24bb09dd6aaebbaf9025061918991000000",
        );
        let aes = ContentCipher::new(EncryptionAlgorithm::Aes256GcmHmacSha256, &master()).unwrap();
        let payload = aes
            .encrypt(id.iv(), &stored, nonce("a0a1a2a3a4a5a6a7a8a9aaab"))
            .unwrap();
        assert_eq!(
            hex::encode(&payload),
            "a0a1a2a3a4a5a6a7a8a9aaabbe32b312f544376dc248de8a64c7f4ac95874bc4afd99da05f687b1c5f321c63358259eb5dc15e5038e385f2d1163acb5869e1d0755e0720cc3a6c328d049c264009d4573c7c855baeccb7db498c9c01612eba1ce6dff41593f15f8e8341be0cef08cbba5c7a6fe869fa19d45a60547d7b56bf16e945f9877f290253ffd1d0828254e5d91c22315f47cd79e6b0af9fadd8c0370d8532482a29f0889028dd322755"
        );
    }

    const V_IDX_E1_E3: &str = "02110010000000020000000101000000000000112233445566778899aabbccddeeff6553f100000000200003e80004040000000f0e0d0c0b0a090807060504030201006553f164800004240001f40002100000360000005e0000000003007030313233343536373839616263646566303132333435363738396162636465662d7330313233343536373839616263646566313432";

    // TEST-VECTORS.md §V-BLOB.
    #[test]
    fn v_blob() {
        let hasher = Hasher::new(HashAlgorithm::Blake2b256_128, &secret()).unwrap();
        let aes = ContentCipher::new(EncryptionAlgorithm::Aes256GcmHmacSha256, &master()).unwrap();
        let plain = unhex(V_IDX_E1_E3);
        assert_eq!(
            hasher.hash(&plain).to_hex(),
            "5afa384d109a8c693f821e95fb361402"
        );
        let want = "c0c1c2c3c4c5c6c7c8c9cacbb58efb7fbd589b0e72273e38dbebea6033f6df1bc25b3d7dc27bc2f6610b7d8f777b21c0d6d180e42f7bb78fcb1e2b32527351088dc0bf389b1eaba38d7f9c0c1c276901afad61dcd9508ddf430ac86355e8f41cff6cf3e5351857e36dfaf198382fde06fa7f23126005ea67e306c0396927825602fb8b22bba616f93a5c7dba7d97ac59fe83d66892484e4dc9461a68e06d9f16f4ff61ace4ba5a57e3efb17ec3fe3058";
        // A session shard is encrypted with an empty prefix; the epoch manager prepends xn0_.
        let (id, data) = encrypt_blob(
            &hasher,
            &aes,
            "",
            Some("s0123456789abcdef142-c1"),
            &plain,
            nonce("c0c1c2c3c4c5c6c7c8c9cacb"),
        )
        .unwrap();
        assert_eq!(
            id.as_str(),
            "5afa384d109a8c693f821e95fb361402-s0123456789abcdef142-c1"
        );
        assert_eq!(hex::encode(&data), want);
        let full = format!("xn0_{id}");
        assert_eq!(
            full,
            "xn0_5afa384d109a8c693f821e95fb361402-s0123456789abcdef142-c1"
        );
        assert_eq!(
            hex::encode(blob_iv_from_id(&full).unwrap()),
            "5afa384d109a8c693f821e95fb361402"
        );
        assert_eq!(decrypt_blob(&aes, &full, &unhex(want)).unwrap(), plain);
        // The same bytes under a different name do not decrypt.
        let renamed = "xn0_5afa384d109a8c693f821e95fb361403-s0123456789abcdef142-c1";
        assert!(matches!(
            decrypt_blob(&aes, renamed, &unhex(want)),
            Err(Error::Decrypt { .. })
        ));
        // With a prefix the ID is prefix + hash.
        let (id, _) = encrypt_blob(&hasher, &aes, "xn0_", None, &plain, [0; 12]).unwrap();
        assert_eq!(id.as_str(), "xn0_5afa384d109a8c693f821e95fb361402");
    }

    #[test]
    fn blob_iv_rules() {
        assert!(blob_iv_from_id("kopia.repository").is_err());
        assert!(blob_iv_from_id("").is_err());
        assert!(blob_iv_from_id("n0011-s12").is_err());
        assert!(blob_iv_from_id("zz5afa384d109a8c693f821e95fb36140z").is_err());
        // 32-byte hashes: the last 16 bytes are the IV.
        let long = format!("n{}{}-s1", "00".repeat(16), "ab".repeat(16));
        assert_eq!(blob_iv_from_id(&long).unwrap(), [0xab; 16]);
        // Multi-byte UTF-8 never panics.
        assert!(blob_iv_from_id("ééééééééééééééééééééééééééééééééé").is_err());
    }

    #[test]
    fn encrypt_in_place_equals_encrypt() {
        for alg in EncryptionAlgorithm::ALL {
            let c = ContentCipher::new(alg, &master()).unwrap();
            let iv = [9u8; 16];
            let n = nonce("0c0d0e0f1011121314151617");
            let mut buf = vec![0xAA; NONCE_LEN];
            buf.extend_from_slice(b"sealed where it lies");
            c.encrypt_in_place(&iv, &mut buf, n).unwrap();
            assert_eq!(buf, c.encrypt(&iv, b"sealed where it lies", n).unwrap());
            assert!(c.encrypt_in_place(&iv, &mut vec![0; 11], n).is_err());
        }
    }

    #[test]
    fn decrypt_in_place_equals_decrypt() {
        for alg in EncryptionAlgorithm::ALL {
            let c = ContentCipher::new(alg, &master()).unwrap();
            let iv = [7u8; 16];
            let sealed = c
                .encrypt(
                    &iv,
                    b"in place plaintext",
                    nonce("000102030405060708090a0b"),
                )
                .unwrap();
            let a = c.decrypt(&iv, &sealed).unwrap();
            let b = c.decrypt_in_place(&iv, sealed.clone()).unwrap();
            assert_eq!(a, b"in place plaintext");
            assert_eq!(b, a);
            let mut bad = sealed.clone();
            bad[20] ^= 1;
            assert!(matches!(
                c.decrypt_in_place(&iv, bad),
                Err(Error::Decrypt { .. })
            ));
            assert!(c.decrypt_in_place(&iv, sealed[..27].to_vec()).is_err());
        }
    }

    #[test]
    fn short_or_garbage_input_is_an_error() {
        let aes = ContentCipher::new(EncryptionAlgorithm::Aes256GcmHmacSha256, &master()).unwrap();
        for n in 0..OVERHEAD {
            assert!(matches!(
                aes.decrypt(b"iv", &vec![0; n]),
                Err(Error::Corrupt { .. })
            ));
        }
        assert!(matches!(
            aes.decrypt(b"iv", &[0; OVERHEAD]),
            Err(Error::Decrypt { .. })
        ));
        assert_eq!(aes.overhead(), 28);
    }

    #[test]
    fn algorithm_names() {
        for a in EncryptionAlgorithm::ALL {
            assert_eq!(a.to_string().parse::<EncryptionAlgorithm>().unwrap(), a);
        }
        for old in ["NONE", "AES256-CTR", "AES-256-CTR", "SALSA20-HMAC", "bogus"] {
            assert!(matches!(
                old.parse::<EncryptionAlgorithm>(),
                Err(Error::Unsupported { .. })
            ));
        }
    }

    #[test]
    fn cipher_is_send_sync_clone() {
        fn assert_traits<T: Send + Sync + Clone>() {}
        assert_traits::<ContentCipher>();
    }

    proptest! {
        #[test]
        fn encrypt_decrypt_roundtrip(
            plain in proptest::collection::vec(any::<u8>(), 0..2000),
            iv in proptest::collection::vec(any::<u8>(), 0..33),
            n in any::<[u8; 12]>(),
            chacha in any::<bool>(),
        ) {
            let alg = if chacha {
                EncryptionAlgorithm::ChaCha20Poly1305HmacSha256
            } else {
                EncryptionAlgorithm::Aes256GcmHmacSha256
            };
            let c = ContentCipher::new(alg, &master()).unwrap();
            let ct = c.encrypt(&iv, &plain, n).unwrap();
            prop_assert_eq!(ct.len(), plain.len() + OVERHEAD);
            prop_assert_eq!(&ct[..12], &n[..]);
            prop_assert_eq!(c.decrypt(&iv, &ct).unwrap(), plain);
        }

        #[test]
        fn decrypt_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let c = ContentCipher::new(EncryptionAlgorithm::Aes256GcmHmacSha256, &master()).unwrap();
            prop_assert!(c.decrypt(b"iv", &data).is_err());
        }

        #[test]
        fn blob_roundtrip(plain in proptest::collection::vec(any::<u8>(), 0..500), n in any::<[u8; 12]>()) {
            let hasher = Hasher::new(HashAlgorithm::Blake2b256, &secret()).unwrap();
            let c = ContentCipher::new(EncryptionAlgorithm::Aes256GcmHmacSha256, &master()).unwrap();
            let (id, data) = encrypt_blob(&hasher, &c, "q", Some("s1"), &plain, n).unwrap();
            prop_assert_eq!(decrypt_blob(&c, id.as_str(), &data).unwrap(), plain);
        }
    }
}
