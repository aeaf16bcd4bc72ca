//! Keyed content hash functions (FORMAT.md §4.1, kopia `repo/hashing`).
//!
//! Every content ID and blob-crypto blob ID is a keyed hash of the plaintext; the key is the
//! repository's `secret` (HMAC secret) used as-is. A [`Hasher`] absorbs the key once at
//! construction and clones that keyed state for every hash, so hashing a small content costs
//! no key schedule.
//!
//! Pitfall: `BLAKE2B-256-128` is keyed BLAKE2b with digest length **32**, truncated to 16 bytes
//! (not BLAKE2b with a 16-byte digest length, which gives different bytes). `BLAKE2S-128`, on
//! the other hand, really is BLAKE2s with digest length 16.

use std::fmt;
use std::str::FromStr;

use blake2::digest::consts::{U16, U32};
use blake2::digest::{FixedOutput, KeyInit, Mac, Update};
use hmac::Hmac;

use crate::ids::ContentId;
use crate::{Error, Result};

/// Largest hash output of any algorithm, in bytes.
pub const MAX_HASH_LEN: usize = 32;

/// A keyed hash algorithm, named exactly as in kopia's `hash` config field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// `BLAKE2B-256-128`: keyed BLAKE2b-256 truncated to 16 bytes (kopia's default).
    #[default]
    Blake2b256_128,
    /// `BLAKE2B-256`: keyed BLAKE2b-256.
    Blake2b256,
    /// `BLAKE2S-128`: keyed BLAKE2s with a 16-byte digest (a key is required).
    Blake2s128,
    /// `BLAKE2S-256`: keyed BLAKE2s-256.
    Blake2s256,
    /// `BLAKE3-256`: keyed BLAKE3 (short keys are stretched with `derive_key`).
    Blake3_256,
    /// `BLAKE3-256-128`: keyed BLAKE3 truncated to 16 bytes.
    Blake3_256_128,
    /// `HMAC-SHA256`.
    HmacSha256,
    /// `HMAC-SHA256-128`: HMAC-SHA256 truncated to 16 bytes.
    HmacSha256_128,
    /// `HMAC-SHA224`.
    HmacSha224,
    /// `HMAC-SHA3-224`.
    HmacSha3_224,
    /// `HMAC-SHA3-256`.
    HmacSha3_256,
}

impl HashAlgorithm {
    /// Every algorithm kopia v0.23.1 registers, in kopia's (sorted) listing order.
    pub const ALL: [HashAlgorithm; 11] = [
        HashAlgorithm::Blake2b256,
        HashAlgorithm::Blake2b256_128,
        HashAlgorithm::Blake2s128,
        HashAlgorithm::Blake2s256,
        HashAlgorithm::Blake3_256,
        HashAlgorithm::Blake3_256_128,
        HashAlgorithm::HmacSha224,
        HashAlgorithm::HmacSha256,
        HashAlgorithm::HmacSha256_128,
        HashAlgorithm::HmacSha3_224,
        HashAlgorithm::HmacSha3_256,
    ];

    /// Kopia's name of the algorithm.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Blake2b256_128 => "BLAKE2B-256-128",
            HashAlgorithm::Blake2b256 => "BLAKE2B-256",
            HashAlgorithm::Blake2s128 => "BLAKE2S-128",
            HashAlgorithm::Blake2s256 => "BLAKE2S-256",
            HashAlgorithm::Blake3_256 => "BLAKE3-256",
            HashAlgorithm::Blake3_256_128 => "BLAKE3-256-128",
            HashAlgorithm::HmacSha256 => "HMAC-SHA256",
            HashAlgorithm::HmacSha256_128 => "HMAC-SHA256-128",
            HashAlgorithm::HmacSha224 => "HMAC-SHA224",
            HashAlgorithm::HmacSha3_224 => "HMAC-SHA3-224",
            HashAlgorithm::HmacSha3_256 => "HMAC-SHA3-256",
        }
    }

    /// Length of the hash (and so of content-ID hashes) in bytes: 16, 28 or 32.
    pub fn output_len(self) -> usize {
        match self {
            HashAlgorithm::Blake2b256_128
            | HashAlgorithm::Blake2s128
            | HashAlgorithm::Blake3_256_128
            | HashAlgorithm::HmacSha256_128 => 16,
            HashAlgorithm::HmacSha224 | HashAlgorithm::HmacSha3_224 => 28,
            HashAlgorithm::Blake2b256
            | HashAlgorithm::Blake2s256
            | HashAlgorithm::Blake3_256
            | HashAlgorithm::HmacSha256
            | HashAlgorithm::HmacSha3_256 => 32,
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        HashAlgorithm::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| Error::unsupported("hash algorithm", s))
    }
}

/// A hash value: up to [`MAX_HASH_LEN`] bytes inline, no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashOutput {
    bytes: [u8; MAX_HASH_LEN],
    len: u8,
}

impl HashOutput {
    /// Takes the first `len` bytes of a full-width digest.
    fn truncated(full: &[u8], len: usize) -> Self {
        let mut bytes = [0u8; MAX_HASH_LEN];
        let n = len.min(full.len()).min(MAX_HASH_LEN);
        if let (Some(dst), Some(src)) = (bytes.get_mut(..n), full.get(..n)) {
            dst.copy_from_slice(src);
        }
        HashOutput {
            bytes,
            len: n as u8,
        }
    }

    /// The hash bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len as usize).unwrap_or(&[])
    }

    /// Lowercase hex of the hash.
    pub fn to_hex(&self) -> String {
        hex::encode(self.as_slice())
    }
}

impl AsRef<[u8]> for HashOutput {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::ops::Deref for HashOutput {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for HashOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HashOutput({})", self.to_hex())
    }
}

impl fmt::Display for HashOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Pre-keyed state of one algorithm; cloned for every hash.
#[derive(Clone)]
enum KeyedState {
    /// BLAKE2b with a 32-byte digest, keyed or not (blake2b_simd, with AVX2 where
    /// available).
    Blake2b(Box<blake2b_simd::State>),
    /// Keyed BLAKE2b with a 32-byte digest from the portable implementation, used where it
    /// is the faster one (see [`portable_blake2b_is_faster`]).
    Blake2bPortable(Box<blake2::Blake2bMac<U32>>),
    Blake2s128(Box<blake2::Blake2sMac<U16>>),
    Blake2s256Keyed(Box<blake2::Blake2sMac<U32>>),
    Blake2s256Plain(Box<blake2::Blake2s256>),
    Blake3(Box<blake3::Hasher>),
    HmacSha256(Box<Hmac<sha2::Sha256>>),
    HmacSha224(Box<Hmac<sha2::Sha224>>),
    HmacSha3_224(Box<Hmac<sha3::Sha3_224>>),
    HmacSha3_256(Box<Hmac<sha3::Sha3_256>>),
}

/// A keyed hash function bound to a repository secret. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Hasher {
    alg: HashAlgorithm,
    state: KeyedState,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("Hasher").field("alg", &self.alg).finish()
    }
}

/// Context string kopia uses to stretch short BLAKE3 keys (`repo/hashing/blake3_hashes.go`).
const BLAKE3_KEY_CONTEXT: &str = "kopia blake3 derived key v1";

fn bad_key(alg: HashAlgorithm, detail: &str) -> Error {
    Error::invalid("hash secret", format!("{alg}: {detail}"))
}

impl Hasher {
    /// Keys `alg` with `secret` (the repository's `secret` config field).
    ///
    /// Errors like kopia: BLAKE2b keys are at most 64 bytes, BLAKE2s keys at most 32 and
    /// `BLAKE2S-128` requires a non-empty key. An empty secret means unkeyed BLAKE2.
    pub fn new(alg: HashAlgorithm, secret: &[u8]) -> Result<Hasher> {
        let state = match alg {
            HashAlgorithm::Blake2b256_128 | HashAlgorithm::Blake2b256 => {
                // Checked here: blake2b_simd asserts (panics) on over-long keys.
                if secret.len() > blake2b_simd::KEYBYTES {
                    return Err(bad_key(alg, "key longer than 64 bytes"));
                }
                Self::blake2b(secret, !secret.is_empty() && portable_blake2b_is_faster())?
            }
            HashAlgorithm::Blake2s128 => {
                if secret.is_empty() {
                    return Err(bad_key(alg, "a key is required for a 128-bit hash"));
                }
                if secret.len() > 32 {
                    return Err(bad_key(alg, "key longer than 32 bytes"));
                }
                let m = blake2::Blake2sMac::<U16>::new_with_salt_and_personal(secret, &[], &[])
                    .map_err(|_| bad_key(alg, "key longer than 32 bytes"))?;
                KeyedState::Blake2s128(Box::new(m))
            }
            HashAlgorithm::Blake2s256 => {
                if secret.is_empty() {
                    KeyedState::Blake2s256Plain(Box::default())
                } else {
                    if secret.len() > 32 {
                        return Err(bad_key(alg, "key longer than 32 bytes"));
                    }
                    let m = blake2::Blake2sMac::<U32>::new_with_salt_and_personal(secret, &[], &[])
                        .map_err(|_| bad_key(alg, "key longer than 32 bytes"))?;
                    KeyedState::Blake2s256Keyed(Box::new(m))
                }
            }
            HashAlgorithm::Blake3_256 | HashAlgorithm::Blake3_256_128 => {
                let key: [u8; 32] = match secret.get(..32).map(<[u8; 32]>::try_from) {
                    Some(Ok(k)) => k,
                    _ => blake3::derive_key(BLAKE3_KEY_CONTEXT, secret),
                };
                KeyedState::Blake3(Box::new(blake3::Hasher::new_keyed(&key)))
            }
            HashAlgorithm::HmacSha256 | HashAlgorithm::HmacSha256_128 => KeyedState::HmacSha256(
                Box::new(hmac_key(secret).map_err(|_| bad_key(alg, "invalid key"))?),
            ),
            HashAlgorithm::HmacSha224 => KeyedState::HmacSha224(Box::new(
                hmac_key(secret).map_err(|_| bad_key(alg, "invalid key"))?,
            )),
            HashAlgorithm::HmacSha3_224 => KeyedState::HmacSha3_224(Box::new(
                hmac_key(secret).map_err(|_| bad_key(alg, "invalid key"))?,
            )),
            HashAlgorithm::HmacSha3_256 => KeyedState::HmacSha3_256(Box::new(
                hmac_key(secret).map_err(|_| bad_key(alg, "invalid key"))?,
            )),
        };
        Ok(Hasher { alg, state })
    }

    /// BLAKE2b state for a key of at most 64 bytes (checked by the caller); `portable`
    /// needs a non-empty key. An empty key is unkeyed BLAKE2b (key length 0 in the
    /// parameter block).
    fn blake2b(secret: &[u8], portable: bool) -> Result<KeyedState> {
        if portable {
            let m = blake2::Blake2bMac::<U32>::new_with_salt_and_personal(secret, &[], &[])
                .map_err(|_| bad_key(HashAlgorithm::Blake2b256, "key longer than 64 bytes"))?;
            return Ok(KeyedState::Blake2bPortable(Box::new(m)));
        }
        let state = blake2b_simd::Params::new()
            .hash_length(32)
            .key(secret)
            .to_state();
        Ok(KeyedState::Blake2b(Box::new(state)))
    }

    /// The algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.alg
    }

    /// Output length in bytes.
    pub fn output_len(&self) -> usize {
        self.alg.output_len()
    }

    /// Hashes `data`.
    pub fn hash(&self, data: &[u8]) -> HashOutput {
        let n = self.alg.output_len();
        match &self.state {
            KeyedState::Blake2b(s) => {
                let mut h = (**s).clone();
                h.update(data);
                HashOutput::truncated(h.finalize().as_bytes(), n)
            }
            KeyedState::Blake2bPortable(s) => finish_mac((**s).clone(), data, n),
            KeyedState::Blake2s128(s) => finish_mac((**s).clone(), data, n),
            KeyedState::Blake2s256Keyed(s) => finish_mac((**s).clone(), data, n),
            KeyedState::Blake2s256Plain(s) => {
                let mut h = (**s).clone();
                Update::update(&mut h, data);
                HashOutput::truncated(&h.finalize_fixed(), n)
            }
            KeyedState::Blake3(s) => {
                let mut h = (**s).clone();
                h.update(data);
                HashOutput::truncated(h.finalize().as_bytes(), n)
            }
            KeyedState::HmacSha256(s) => finish_mac((**s).clone(), data, n),
            KeyedState::HmacSha224(s) => finish_mac((**s).clone(), data, n),
            KeyedState::HmacSha3_224(s) => finish_mac((**s).clone(), data, n),
            KeyedState::HmacSha3_256(s) => finish_mac((**s).clone(), data, n),
        }
    }

    /// The content ID of `data` stored under `prefix` (`None` or `Some(b'g'..=b'z')`).
    ///
    /// Fails only for an invalid prefix.
    pub fn content_id(&self, prefix: Option<u8>, data: &[u8]) -> Result<ContentId> {
        ContentId::from_hash(prefix, self.hash(data).as_slice())
    }
}

/// Whether the portable BLAKE2b beats blake2b_simd on this CPU, measured once per process
/// (about a millisecond). The SIMD code is not faster everywhere: on the AMD EPYC machines
/// the benchmarks ran on, the portable code hashed 950 MiB/s and blake2b_simd's AVX2 path
/// 695 MiB/s. Both compute the same function (tested against each other and the vectors).
fn portable_blake2b_is_faster() -> bool {
    static FASTER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FASTER.get_or_init(|| {
        let data = vec![0x5au8; 64 << 10];
        let key = [7u8; 32];
        let time = |portable: bool| {
            let Ok(state) = Hasher::blake2b(&key, portable) else {
                return std::time::Duration::MAX;
            };
            let h = Hasher {
                alg: HashAlgorithm::Blake2b256_128,
                state,
            };
            let start = std::time::Instant::now();
            std::hint::black_box(h.hash(std::hint::black_box(&data)));
            start.elapsed()
        };
        let (mut simd, mut portable) = (std::time::Duration::MAX, std::time::Duration::MAX);
        for _ in 0..4 {
            simd = simd.min(time(false));
            portable = portable.min(time(true));
        }
        // Only a clear win counts: a tie keeps the SIMD code.
        portable.as_nanos() * 10 < simd.as_nanos() * 9
    })
}

fn hmac_key<M: KeyInit>(secret: &[u8]) -> std::result::Result<M, blake2::digest::InvalidLength> {
    <M as KeyInit>::new_from_slice(secret)
}

fn finish_mac<M: Mac>(mut m: M, data: &[u8], n: usize) -> HashOutput {
    Mac::update(&mut m, data);
    HashOutput::truncated(&m.finalize().into_bytes(), n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn both_blake2b_implementations_agree() {
        let data: Vec<u8> = (0..(1u32 << 20) + 77)
            .map(|i| (i * 7 + i / 251) as u8)
            .collect();
        for key_len in [1usize, 16, 32, 63, 64] {
            let key: Vec<u8> = (0..key_len).map(|i| i as u8 ^ 0xa5).collect();
            let make = |portable| Hasher {
                alg: HashAlgorithm::Blake2b256,
                state: Hasher::blake2b(&key, portable).unwrap(),
            };
            let (simd, portable) = (make(false), make(true));
            assert!(matches!(portable.state, KeyedState::Blake2bPortable(_)));
            assert!(matches!(simd.state, KeyedState::Blake2b(_)));
            for len in [0usize, 1, 127, 128, 129, 255, 256, 4096, 65_537, data.len()] {
                assert_eq!(
                    simd.hash(&data[..len]),
                    portable.hash(&data[..len]),
                    "key {key_len} bytes, data {len} bytes"
                );
            }
        }
        // Whichever this CPU picked, an empty key stays unkeyed BLAKE2b (simd).
        let unkeyed = Hasher::new(HashAlgorithm::Blake2b256, &[]).unwrap();
        assert!(matches!(unkeyed.state, KeyedState::Blake2b(_)));
    }

    fn secret() -> Vec<u8> {
        (0u8..32).collect()
    }

    fn h(alg: HashAlgorithm, key: &[u8], data: &[u8]) -> String {
        Hasher::new(alg, key).unwrap().hash(data).to_hex()
    }

    // TEST-VECTORS.md §V-HASH.
    #[test]
    fn v_hash_table() {
        use HashAlgorithm::*;
        type Row<'a> = (&'a [u8], [(HashAlgorithm, &'a str); 6]);
        let rows: [Row; 3] = [
            (
                b"",
                [
                    (Blake2b256_128, "4e51e7a913fc80137da52880fecca175"),
                    (
                        Blake2b256,
                        "4e51e7a913fc80137da52880fecca175bf81e117d5c68126dc2774033517ea0d",
                    ),
                    (HmacSha256_128, "d38b42096d80f45f826b44a9d5607de7"),
                    (
                        HmacSha256,
                        "d38b42096d80f45f826b44a9d5607de72496a415d3f4a1a8c88e3bb9da8dc1cb",
                    ),
                    (
                        Blake2s256,
                        "48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49",
                    ),
                    (Blake2s128, "9536f9b267655743dee97b8a670f9f53"),
                ],
            ),
            (
                b"hello kopia",
                [
                    (Blake2b256_128, "4535fcbe761df7c62b5da83f8ba84165"),
                    (
                        Blake2b256,
                        "4535fcbe761df7c62b5da83f8ba841651af84b91e70e5023430f4dc9b10f2126",
                    ),
                    (HmacSha256_128, "87a222670ec75fa580126a7a6d29fd1b"),
                    (
                        HmacSha256,
                        "87a222670ec75fa580126a7a6d29fd1b7560f14a3715479c6403bfb4f4deefef",
                    ),
                    (
                        Blake2s256,
                        "fa0c927031c5db0a613aee01eab2fcf39092532820d594a6a4558572a429a20a",
                    ),
                    (Blake2s128, "c741a0a9d8485f19c8bfc299fa3cef98"),
                ],
            ),
            (
                &[0u8; 100],
                [
                    (Blake2b256_128, "51f63c2dab2f6d5b294d7ed4a0c41674"),
                    (
                        Blake2b256,
                        "51f63c2dab2f6d5b294d7ed4a0c416742097810fb33e4873db960d7a2322ddc1",
                    ),
                    (HmacSha256_128, "7b8a33622703a143e29751df60bd7a18"),
                    (
                        HmacSha256,
                        "7b8a33622703a143e29751df60bd7a18621e9713258788e8629aa3cc1e50fe27",
                    ),
                    (
                        Blake2s256,
                        "65baec1f1974e3a49b5cef0131ff729cb615e5a9f6ffb23dd095f5f9a170a80d",
                    ),
                    (Blake2s128, "b8b3518ac6d32040d18dbe6034d95261"),
                ],
            ),
        ];
        for (data, cols) in rows {
            for (alg, want) in cols {
                assert_eq!(h(alg, &secret(), data), want, "{alg} of {data:?}");
            }
        }
    }

    // TEST-VECTORS.md §V-HASH-KOPIA (kopia repo/repository_test.go).
    #[test]
    fn v_hash_kopia_table() {
        let k = b"a-repository-testing-hmac-secret";
        let rows: [(&[u8], HashAlgorithm, &[u8], &str); 7] = [
            (
                k,
                HashAlgorithm::HmacSha256,
                b"the quick brown fox jumps over the lazy dog",
                "f65fc4107863281faaeb7087197c05ad59457362607330c665c86c852c5e5906",
            ),
            (
                k,
                HashAlgorithm::HmacSha256,
                &[0u8; 100],
                "bfa2b4b9421671ab2b5bfa8c90ee33607784a27e452b08556509ef9bd47a37c6",
            ),
            (
                k,
                HashAlgorithm::HmacSha256,
                &[0xcdu8; 50],
                "e37e93ba74e074ad1366ee2f032ee9c3a5b81ec82c140b053c1a4e6673d5d9d9",
            ),
            (
                k,
                HashAlgorithm::HmacSha256,
                b"",
                "0c2d44dc80de21b71d4219623082f5dc253fe9bb54e48b0fc90e118f8e6cf419",
            ),
            (
                k,
                HashAlgorithm::HmacSha256,
                b"The quick brown fox jumps over the lazy dog",
                "6bbb74fef0699e516fb96252d8280c1c7f3492e12de9ec6d79c3c9c39b7b0063",
            ),
            (
                b"key",
                HashAlgorithm::HmacSha256,
                b"The quick brown fox jumps over the lazy dog",
                "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
            ),
            (
                b"key",
                HashAlgorithm::HmacSha256_128,
                b"The quick brown fox jumps over the lazy dog",
                "f7bc83f430538424b13298e6aa6fb143",
            ),
        ];
        for (key, alg, data, want) in rows {
            let hasher = Hasher::new(alg, key).unwrap();
            assert_eq!(hasher.hash(data).to_hex(), want);
            let id = hasher.content_id(None, data).unwrap();
            assert_eq!(id.to_string(), want);
        }
    }

    #[test]
    fn content_id_with_prefix() {
        let hasher = Hasher::new(HashAlgorithm::Blake2b256_128, &secret()).unwrap();
        assert_eq!(
            hasher
                .content_id(Some(b'k'), b"hello kopia")
                .unwrap()
                .to_string(),
            "k4535fcbe761df7c62b5da83f8ba84165"
        );
        assert!(hasher.content_id(Some(b'a'), b"x").is_err());
    }

    #[test]
    fn blake2b_truncation_is_not_a_16_byte_digest() {
        // The pitfall of FORMAT.md §4.1: a 16-byte-digest BLAKE2b gives other bytes.
        let mut m =
            blake2::Blake2bMac::<U16>::new_with_salt_and_personal(&secret(), &[], &[]).unwrap();
        Mac::update(&mut m, b"hello kopia");
        let wrong = hex::encode(m.finalize().into_bytes());
        assert_ne!(
            wrong,
            h(HashAlgorithm::Blake2b256_128, &secret(), b"hello kopia")
        );
    }

    #[test]
    fn names_roundtrip_and_lengths() {
        for alg in HashAlgorithm::ALL {
            assert_eq!(alg.to_string().parse::<HashAlgorithm>().unwrap(), alg);
            let hasher = Hasher::new(alg, &secret()).unwrap();
            assert_eq!(hasher.hash(b"abc").len(), alg.output_len());
            assert_eq!(hasher.output_len(), alg.output_len());
        }
        assert_eq!(HashAlgorithm::default().to_string(), "BLAKE2B-256-128");
        assert!(matches!(
            "SHA256".parse::<HashAlgorithm>(),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn unkeyed_blake2_matches_reference() {
        // Unkeyed BLAKE2b-256("abc") and BLAKE2s-256("abc") (RFC 7693 / reference vectors).
        assert_eq!(
            h(HashAlgorithm::Blake2b256, &[], b"abc"),
            "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319"
        );
        assert_eq!(
            h(HashAlgorithm::Blake2s256, &[], b"abc"),
            "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982"
        );
        assert!(Hasher::new(HashAlgorithm::Blake2s128, &[]).is_err());
        assert!(Hasher::new(HashAlgorithm::Blake2s256, &[0u8; 33]).is_err());
        assert!(Hasher::new(HashAlgorithm::Blake2s128, &[0u8; 33]).is_err());
        assert!(Hasher::new(HashAlgorithm::Blake2s256, &[0u8; 32]).is_ok());
        assert!(Hasher::new(HashAlgorithm::Blake2b256, &[0u8; 64]).is_ok());
        assert!(Hasher::new(HashAlgorithm::Blake2b256, &[0u8; 65]).is_err());
    }

    #[test]
    fn blake3_key_handling() {
        // 32-byte secrets are used directly; longer ones are truncated; shorter ones stretched.
        let key: [u8; 32] = secret().try_into().unwrap();
        let direct = blake3::keyed_hash(&key, b"x");
        assert_eq!(
            h(HashAlgorithm::Blake3_256, &key, b"x"),
            hex::encode(direct.as_bytes())
        );
        let mut long = secret();
        long.extend_from_slice(b"ignored");
        assert_eq!(
            h(HashAlgorithm::Blake3_256, &long, b"x"),
            hex::encode(direct.as_bytes())
        );
        let stretched = blake3::derive_key(BLAKE3_KEY_CONTEXT, b"short");
        assert_eq!(
            h(HashAlgorithm::Blake3_256_128, b"short", b"x"),
            hex::encode(&blake3::keyed_hash(&stretched, b"x").as_bytes()[..16])
        );
    }

    #[test]
    fn hasher_is_send_sync_clone() {
        fn assert_traits<T: Send + Sync + Clone>() {}
        assert_traits::<Hasher>();
    }
}
