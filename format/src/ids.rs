//! Identifiers: content IDs, object IDs, blob IDs and manifest IDs (FORMAT.md §4.2, §10.1).
//!
//! * A content ID is an optional one-letter prefix (`g`..=`z`) plus a hash of 1..=32 bytes; its
//!   string form is `prefix + hex(hash)`. Its binary form (used as index key) is
//!   `prefixByte || hash` with `prefixByte = 0` for no prefix, and IDs sort by that key.
//! * An object ID is `"I"* ["Z"] ["D"] contentID` (`I` = one level of indirection, `Z` =
//!   object-level compression, `D` = legacy no-op marker that is accepted but never printed).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// Maximum hash length of a content ID in bytes (256-bit hashes).
pub const MAX_HASH_LEN: usize = 32;

/// A content ID: optional prefix letter plus hash bytes. `Copy`, 34 bytes, no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentId {
    /// `0` for no prefix, else an ASCII letter in `g..=z`.
    prefix: u8,
    len: u8,
    hash: [u8; MAX_HASH_LEN],
}

impl ContentId {
    /// The empty content ID (no prefix, no hash).
    pub const EMPTY: ContentId = ContentId {
        prefix: 0,
        len: 0,
        hash: [0; MAX_HASH_LEN],
    };

    /// Builds an ID from a prefix (`None` or `Some(b'g'..=b'z')`) and a hash.
    pub fn from_hash(prefix: Option<u8>, hash: &[u8]) -> Result<Self> {
        let prefix = match prefix {
            None => 0,
            Some(p) if is_valid_prefix(p) => p,
            Some(p) => {
                return Err(Error::invalid(
                    "content ID prefix",
                    format!("{:?} is not a letter in g..z", p as char),
                ));
            }
        };
        if hash.len() > MAX_HASH_LEN {
            return Err(Error::invalid("content ID", "hash too long"));
        }
        let mut out = [0u8; MAX_HASH_LEN];
        out.get_mut(..hash.len())
            .ok_or_else(|| Error::invalid("content ID", "hash too long"))?
            .copy_from_slice(hash);
        Ok(ContentId {
            prefix,
            len: hash.len() as u8,
            hash: out,
        })
    }

    /// Decodes the binary index key form `prefixByte || hash`.
    pub fn from_key(key: &[u8]) -> Result<Self> {
        let (&p, hash) = key
            .split_first()
            .ok_or_else(|| Error::corrupt("content ID key", "empty key"))?;
        let prefix = if p == 0 { None } else { Some(p) };
        Self::from_hash(prefix, hash).map_err(|e| Error::corrupt("content ID key", e.to_string()))
    }

    /// The binary index key form `prefixByte || hash` without allocating: a buffer and the
    /// key's length in it (lookups build one per index blob they search).
    pub fn key_array(&self) -> ([u8; 1 + MAX_HASH_LEN], usize) {
        let mut key = [0u8; 1 + MAX_HASH_LEN];
        if let Some((prefix, hash)) = key.split_first_mut() {
            *prefix = self.prefix;
            hash.copy_from_slice(&self.hash);
        }
        (key, 1 + usize::from(self.len))
    }

    /// Appends the binary index key form `prefixByte || hash` to `out`.
    pub fn write_key(&self, out: &mut Vec<u8>) {
        out.push(self.prefix);
        out.extend_from_slice(self.hash());
    }

    /// The binary index key form.
    pub fn key(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + self.hash().len());
        self.write_key(&mut v);
        v
    }

    /// The prefix letter, if any.
    pub fn prefix(&self) -> Option<u8> {
        (self.prefix != 0).then_some(self.prefix)
    }

    /// The hash bytes.
    pub fn hash(&self) -> &[u8] {
        self.hash.get(..self.len as usize).unwrap_or(&[])
    }

    /// True for the empty ID.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && self.prefix == 0
    }

    /// True when the content has a prefix (metadata: lives in `q` packs).
    pub fn has_prefix(&self) -> bool {
        self.prefix != 0
    }

    /// The IV handed to encryption: the last 16 bytes of the hash (FORMAT.md §4.3).
    pub fn iv(&self) -> &[u8] {
        let h = self.hash();
        h.get(h.len().saturating_sub(16)..).unwrap_or(h)
    }
}

fn is_valid_prefix(p: u8) -> bool {
    (b'g'..=b'z').contains(&p)
}

impl Default for ContentId {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl Ord for ContentId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| self.hash().cmp(other.hash()))
    }
}

impl PartialOrd for ContentId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix != 0 {
            write!(f, "{}", self.prefix as char)?;
        }
        for b in self.hash() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ContentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentId({self})")
    }
}

impl FromStr for ContentId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |d: &str| Error::invalid("content ID", format!("{s:?}: {d}"));
        if s.is_empty() {
            return Ok(Self::EMPTY);
        }
        let bytes = s.as_bytes();
        let (prefix, hex_part) = if bytes.len() % 2 == 1 {
            let (&p, rest) = bytes.split_first().ok_or_else(|| bad("empty"))?;
            if !is_valid_prefix(p) {
                return Err(bad("invalid prefix"));
            }
            (Some(p), rest)
        } else {
            (None, bytes)
        };
        if hex_part.is_empty() {
            return Err(bad("too short"));
        }
        if hex_part.len() > MAX_HASH_LEN * 2 {
            return Err(bad("too long"));
        }
        let mut buf = [0u8; MAX_HASH_LEN];
        let n = hex_part.len() / 2;
        let dst = buf.get_mut(..n).ok_or_else(|| bad("too long"))?;
        hex::decode_to_slice(hex_part, dst).map_err(|_| bad("invalid hex"))?;
        // Only lowercase hex is canonical; kopia prints lowercase and its parser is hex.DecodeString
        // (which accepts uppercase). Accept both, print lowercase.
        Self::from_hash(prefix, dst)
    }
}

impl serde::Serialize for ContentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ContentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An object ID (FORMAT.md §10.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ObjectId {
    indirection: u8,
    compressed: bool,
    content: ContentId,
}

impl ObjectId {
    /// The empty object ID ("no object").
    pub const EMPTY: ObjectId = ObjectId {
        indirection: 0,
        compressed: false,
        content: ContentId::EMPTY,
    };

    /// A direct object stored as one content.
    pub fn direct(content: ContentId) -> Self {
        ObjectId {
            indirection: 0,
            compressed: false,
            content,
        }
    }

    /// A direct object whose single content holds object-level compressed data (`Z`).
    pub fn compressed(content: ContentId) -> Self {
        ObjectId {
            indirection: 0,
            compressed: true,
            content,
        }
    }

    /// One more level of indirection around `inner` (`I` + inner).
    pub fn indirect(inner: ObjectId) -> Result<Self> {
        if inner.compressed {
            return Err(Error::invalid(
                "object ID",
                "indirection of a compressed object",
            ));
        }
        let indirection = inner
            .indirection
            .checked_add(1)
            .ok_or_else(|| Error::invalid("object ID", "too many levels of indirection"))?;
        Ok(ObjectId {
            indirection,
            ..inner
        })
    }

    /// Levels of indirection (number of leading `I`).
    pub fn indirection(&self) -> u8 {
        self.indirection
    }

    /// True for a `Z` (object-level compressed) object.
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }

    /// The content at the bottom of the ID.
    pub fn content_id(&self) -> ContentId {
        self.content
    }

    /// For an indirect ID, the ID of the object holding its chunk list (one `I` fewer).
    pub fn index_object(&self) -> Option<ObjectId> {
        (self.indirection > 0).then(|| ObjectId {
            indirection: self.indirection - 1,
            ..*self
        })
    }

    /// True for the empty ID.
    pub fn is_empty(&self) -> bool {
        self.indirection == 0 && !self.compressed && self.content.is_empty()
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for _ in 0..self.indirection {
            f.write_str("I")?;
        }
        if self.compressed {
            f.write_str("Z")?;
        }
        write!(f, "{}", self.content)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl FromStr for ObjectId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |d: &str| Error::invalid("object ID", format!("{s:?}: {d}"));
        if s.is_empty() {
            return Ok(Self::EMPTY);
        }
        let mut rest = s;
        let mut indirection: u8 = 0;
        while let Some(r) = rest.strip_prefix('I') {
            indirection = indirection
                .checked_add(1)
                .ok_or_else(|| bad("too many levels of indirection"))?;
            rest = r;
        }
        let mut compressed = false;
        if let Some(r) = rest.strip_prefix('Z') {
            compressed = true;
            rest = r;
        }
        if let Some(r) = rest.strip_prefix('D') {
            rest = r;
        }
        if compressed && indirection > 0 {
            return Err(bad("indirection and compression together"));
        }
        if rest.is_empty() {
            return Err(bad("missing content ID"));
        }
        let content: ContentId = rest.parse().map_err(|_| bad("invalid content ID"))?;
        Ok(ObjectId {
            indirection,
            compressed,
            content,
        })
    }
}

impl serde::Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The name of a blob in storage (`p…`, `xn0_…`, `kopia.repository`, ...).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BlobId(String);

impl BlobId {
    /// Wraps a blob name.
    pub fn new(s: impl Into<String>) -> Self {
        BlobId(s.into())
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the ID into its string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", self.0)
    }
}

impl From<&str> for BlobId {
    fn from(s: &str) -> Self {
        BlobId(s.to_owned())
    }
}

impl From<String> for BlobId {
    fn from(s: String) -> Self {
        BlobId(s)
    }
}

impl AsRef<str> for BlobId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A manifest ID: 32 hex characters of random bytes, unrelated to any hash.
#[derive(
    Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct ManifestId(String);

impl ManifestId {
    /// Wraps a manifest ID string.
    pub fn new(s: impl Into<String>) -> Self {
        ManifestId(s.into())
    }

    /// Builds the ID from 16 random bytes.
    pub fn from_random(bytes: [u8; 16]) -> Self {
        ManifestId(hex::encode(bytes))
    }

    /// The ID as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ManifestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ManifestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManifestId({})", self.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    // TEST-VECTORS.md §V-ID (kopia repo/content/index/id_test.go).
    #[test]
    fn content_ids_sort_as_kopia() {
        let valid = [
            "",
            "0012abcd",
            "12345678",
            "ffffffff",
            "g01234567",
            "g01234568",
            "yffffffff",
            "z00000000",
            "z00000001",
            "zffffffff",
        ];
        let parsed: Vec<ContentId> = valid.iter().map(|s| s.parse().unwrap()).collect();
        for (s, id) in valid.iter().zip(&parsed) {
            assert_eq!(&id.to_string(), s);
        }
        let mut sorted = parsed.clone();
        sorted.sort();
        assert_eq!(sorted, parsed);
        // and by binary key
        let mut keys: Vec<Vec<u8>> = parsed.iter().map(|c| c.key()).collect();
        keys.sort();
        assert_eq!(keys, parsed.iter().map(|c| c.key()).collect::<Vec<_>>());
    }

    #[test]
    fn id_from_hash() {
        assert_eq!(
            ContentId::from_hash(None, &[0x12, 0x34])
                .unwrap()
                .to_string(),
            "1234"
        );
        assert_eq!(
            ContentId::from_hash(Some(b'x'), &[0x12, 0x34])
                .unwrap()
                .to_string(),
            "x1234"
        );
        let h: Vec<u8> = (0..16u8).chain(0..16u8).collect();
        assert_eq!(
            ContentId::from_hash(Some(b'x'), &h).unwrap().to_string(),
            "x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"
        );
        assert!(ContentId::from_hash(Some(b'x'), &[0u8; 33]).is_err());
        assert!(ContentId::from_hash(Some(b'A'), &[0u8; 3]).is_err());
    }

    #[test]
    fn invalid_content_ids() {
        for s in [
            "x",
            "x1",
            "xx",
            "x000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f11",
            "A00",
            "@abcd",
        ] {
            assert!(s.parse::<ContentId>().is_err(), "{s} should be invalid");
        }
    }

    #[test]
    fn object_ids_parse_and_print() {
        let cases = [
            ("Df0f0", "f0f0"),
            ("IDf0f0", "If0f0"),
            ("IIDf0f0", "IIf0f0"),
            ("Dxf0f0", "xf0f0"),
            ("IDxf0f0", "Ixf0f0"),
            ("IIDxf0f0", "IIxf0f0"),
            ("", ""),
            ("Dabcd", "abcd"),
            ("abcd", "abcd"),
            ("IIabcd", "IIabcd"),
            ("Zabcd", "Zabcd"),
        ];
        for (input, canonical) in cases {
            let id: ObjectId = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(id.to_string(), canonical, "{input}");
        }
        let z: ObjectId = "Zabcd".parse().unwrap();
        assert!(z.is_compressed());
        let ii: ObjectId = "IIxf0f0".parse().unwrap();
        assert_eq!(ii.indirection(), 2);
        assert_eq!(ii.index_object().unwrap().to_string(), "Ixf0f0");
    }

    #[test]
    fn invalid_object_ids() {
        for s in [
            "Dxf0f",
            "IDxf0f",
            "Da",
            "Daf0f0",
            "B!$@#$!@#$",
            "X",
            "I.",
            "I.x",
            "I.af",
            "Ix.ag",
            "Iab.",
            "I1",
            "I1,",
            "I-1,X",
            "Xsomething",
            "IZabcd",
        ] {
            assert!(s.parse::<ObjectId>().is_err(), "{s} should be invalid");
        }
    }

    #[test]
    fn iv_is_last_16_bytes() {
        let h: Vec<u8> = (0..32u8).collect();
        let id = ContentId::from_hash(Some(b'k'), &h).unwrap();
        assert_eq!(id.iv(), &h[16..]);
        let short = ContentId::from_hash(None, &h[..16]).unwrap();
        assert_eq!(short.iv(), &h[..16]);
    }

    #[test]
    fn key_roundtrip() {
        let id: ContentId = "k216bfaed2a30ff8f0ae5cd6c967efcbf".parse().unwrap();
        let key = id.key();
        assert_eq!(key[0], b'k');
        assert_eq!(ContentId::from_key(&key).unwrap(), id);
        let plain: ContentId = "4535fcbe761df7c62b5da83f8ba84165".parse().unwrap();
        assert_eq!(plain.key()[0], 0);
        assert_eq!(ContentId::from_key(&plain.key()).unwrap(), plain);
        for id in [id, plain] {
            let (buf, len) = id.key_array();
            assert_eq!(&buf[..len], id.key().as_slice());
        }
    }
}
