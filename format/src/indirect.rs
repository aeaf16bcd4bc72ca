//! Indirect objects: the JSON chunk list of a multi-chunk object (FORMAT.md §10.2).
//!
//! Byte layout (Go `json.Encoder` output, compact plus `\n`):
//! ```text
//! {"stream":"kopia:indirect","entries":[{"l":<len>,"o":"<oid>"},{"s":<start>,"l":<len>,"o":"<oid>"},…]}
//! ```
//! `s` (start) and `l` (length) are omitted when 0 (Go `omitempty`). Entries are contiguous
//! from offset 0; the object length is the end of the last entry. Kopia's reader does not
//! check the `stream` value nor contiguity; we do, and report violations as `Corrupt`.

use serde::{Deserialize, Serialize};

use crate::gojson;
use crate::ids::ObjectId;
use crate::{Error, Result};

/// The `stream` value of a chunk list.
pub const INDIRECT_STREAM: &str = "kopia:indirect";

/// One chunk of an indirect object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndirectEntry {
    /// Offset of the chunk in the object (`s`).
    #[serde(rename = "s", default, skip_serializing_if = "is_zero")]
    pub start: u64,
    /// Length of the chunk (`l`).
    #[serde(rename = "l", default, skip_serializing_if = "is_zero")]
    pub length: u64,
    /// Object holding the chunk (`o`); may itself be `Z…`.
    #[serde(rename = "o")]
    pub object: ObjectId,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl IndirectEntry {
    /// End offset (exclusive); saturates instead of overflowing on hostile input.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.length)
    }
}

/// A decoded chunk list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndirectObject {
    /// The chunks, in offset order.
    pub entries: Vec<IndirectEntry>,
}

#[derive(Serialize)]
struct WireOut<'a> {
    stream: &'a str,
    entries: &'a [IndirectEntry],
}

#[derive(Deserialize)]
struct WireIn {
    #[serde(default)]
    stream: String,
    #[serde(default)]
    entries: Option<Vec<IndirectEntry>>,
}

impl IndirectObject {
    /// Builds a chunk list from `(length, object)` pairs, computing the start offsets.
    pub fn from_chunks(chunks: impl IntoIterator<Item = (u64, ObjectId)>) -> Result<Self> {
        let mut start = 0u64;
        let mut entries = Vec::new();
        for (length, object) in chunks {
            entries.push(IndirectEntry {
                start,
                length,
                object,
            });
            start = start
                .checked_add(length)
                .ok_or_else(|| Error::invalid("indirect object", "total length overflows"))?;
        }
        Ok(IndirectObject { entries })
    }

    /// Parses and validates a chunk list (stream type, at least one entry, contiguity).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let wire: WireIn =
            serde_json::from_slice(bytes).map_err(|e| Error::json("indirect object", e))?;
        if wire.stream != INDIRECT_STREAM {
            return Err(Error::corrupt(
                "indirect object",
                format!("stream is {:?}, expected {INDIRECT_STREAM:?}", wire.stream),
            ));
        }
        let entries = wire.entries.unwrap_or_default();
        if entries.is_empty() {
            return Err(Error::corrupt("indirect object", "no entries"));
        }
        let mut expect = 0u64;
        for (i, e) in entries.iter().enumerate() {
            if e.start != expect {
                return Err(Error::corrupt(
                    "indirect object",
                    format!("entry {i} starts at {} instead of {expect}", e.start),
                ));
            }
            expect = e
                .start
                .checked_add(e.length)
                .ok_or_else(|| Error::corrupt("indirect object", format!("entry {i} overflows")))?;
        }
        Ok(IndirectObject { entries })
    }

    /// Exact kopia bytes (`json.Encoder`: compact plus `\n`).
    pub fn encode(&self) -> Result<Vec<u8>> {
        gojson::to_go_json_line(&WireOut {
            stream: INDIRECT_STREAM,
            entries: &self.entries,
        })
    }

    /// Total object length: end of the last entry.
    pub fn total_length(&self) -> u64 {
        self.entries.last().map(IndirectEntry::end).unwrap_or(0)
    }

    /// Index of the entry containing `offset`, or `None` past the end.
    pub fn find(&self, offset: u64) -> Option<usize> {
        let i = self.entries.partition_point(|e| e.end() <= offset);
        self.entries
            .get(i)
            .filter(|e| e.start <= offset && offset < e.end())
            .map(|_| i)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const V_CONTENT_INDIRECT: &str = "{\"stream\":\"kopia:indirect\",\"entries\":[{\"l\":2097152,\"o\":\"00112233445566778899aabbccddeeff\"},{\"s\":2097152,\"l\":1000,\"o\":\"0f0e0d0c0b0a09080706050403020100\"}]}\n";

    // TEST-VECTORS.md §V-CONTENT, indirect object JSON.
    #[test]
    fn v_content_indirect_exact() {
        let obj = IndirectObject::from_chunks([
            (
                2_097_152,
                "00112233445566778899aabbccddeeff".parse().unwrap(),
            ),
            (1000, "0f0e0d0c0b0a09080706050403020100".parse().unwrap()),
        ])
        .unwrap();
        assert_eq!(
            String::from_utf8(obj.encode().unwrap()).unwrap(),
            V_CONTENT_INDIRECT
        );
        let parsed = IndirectObject::parse(V_CONTENT_INDIRECT.as_bytes()).unwrap();
        assert_eq!(parsed, obj);
        assert_eq!(parsed.total_length(), 2_098_152);
        assert_eq!(parsed.find(0), Some(0));
        assert_eq!(parsed.find(2_097_151), Some(0));
        assert_eq!(parsed.find(2_097_152), Some(1));
        assert_eq!(parsed.find(2_098_151), Some(1));
        assert_eq!(parsed.find(2_098_152), None);
    }

    #[test]
    fn rejects_bad_lists() {
        let bad = [
            r#"{"stream":"kopia:directory","entries":[{"l":1,"o":"abcd"}]}"#,
            r#"{"stream":"kopia:indirect","entries":[]}"#,
            r#"{"stream":"kopia:indirect","entries":null}"#,
            r#"{"stream":"kopia:indirect","entries":[{"s":1,"l":1,"o":"abcd"}]}"#,
            r#"{"stream":"kopia:indirect","entries":[{"l":2,"o":"abcd"},{"s":1,"l":1,"o":"abcd"}]}"#,
            r#"{"stream":"kopia:indirect","entries":[{"l":18446744073709551615,"o":"abcd"},{"s":18446744073709551615,"l":1,"o":"abcd"}]}"#,
            r#"{"stream":"kopia:indirect","entries":[{"l":1,"o":"not-an-id"}]}"#,
            r#"[1,2"#,
        ];
        for b in bad {
            assert!(IndirectObject::parse(b.as_bytes()).is_err(), "{b}");
        }
        // Zero-length entries and compressed chunk IDs are fine; legacy D prefix is accepted.
        let ok = IndirectObject::parse(
            br#"{"stream":"kopia:indirect","entries":[{"o":"Zabcd"},{"l":3,"o":"Dabcd"}],"x":1}"#,
        )
        .unwrap();
        assert_eq!(ok.total_length(), 3);
        assert_eq!(ok.find(0), Some(1));
    }

    proptest! {
        #[test]
        fn roundtrip(lens in proptest::collection::vec(0u64..1u64 << 40, 1..20)) {
            let id: ObjectId = "Ix0123456789abcdef0123456789abcdef".parse().unwrap();
            let obj = IndirectObject::from_chunks(lens.iter().map(|&l| (l, id))).unwrap();
            let bytes = obj.encode().unwrap();
            prop_assert_eq!(IndirectObject::parse(&bytes).unwrap(), obj.clone());
            prop_assert_eq!(obj.total_length(), lens.iter().sum::<u64>());
            for (i, e) in obj.entries.iter().enumerate() {
                if e.length > 0 {
                    prop_assert_eq!(obj.find(e.start), Some(i));
                    prop_assert_eq!(obj.find(e.end() - 1), Some(i));
                }
            }
        }
    }
}
