//! Manifest contents (FORMAT.md §11.1, §11.2).
//!
//! A manifest content (prefix `m`) holds `gzip(json.Encoder({"entries":[E…]}))`. Each entry
//! `E` is, in this key order: `id`, `labels` (`null` for tombstones), `modified` (RFC 3339
//! UTC with ns), `deleted` (omitted when false), `data` (raw JSON payload or `null`).
//!
//! Reading follows kopia's `repo/manifest/serialized.go` and
//! `committed_manifest_manager.go`: the top-level key `entries` is matched
//! case-insensitively, a repeated `entries` is an error, other top-level keys are skipped.
//! Entry keys are matched ASCII-case-insensitively (Go's decoder folds case; its Unicode
//! folding of `K`/`ſ` is not reproduced). A `null` entry is rejected (kopia would crash on it).
//! Merging keeps, per ID, the entry with the strictly later `modified` (ties: first seen), then
//! drops tombstones.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};

use chrono::{DateTime, Utc};
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::gojson;
use crate::ids::ManifestId;
use crate::{Error, Result};

/// Label key holding the manifest kind (mandatory).
pub const TYPE_LABEL: &str = "type";
/// `type` value of snapshot manifests.
pub const TYPE_SNAPSHOT: &str = "snapshot";
/// `type` value of policy manifests.
pub const TYPE_POLICY: &str = "policy";
/// `type` value of the maintenance parameters manifest.
pub const TYPE_MAINTENANCE: &str = "maintenance";
/// Label key: host name of a snapshot source or policy target.
pub const HOSTNAME_LABEL: &str = "hostname";
/// Label key: user name of a snapshot source or policy target.
pub const USERNAME_LABEL: &str = "username";
/// Label key: path of a snapshot source or policy target.
pub const PATH_LABEL: &str = "path";
/// Label key: policy level (`global`, `host`, `user`, `path`).
pub const POLICY_TYPE_LABEL: &str = "policyType";

/// Largest decompressed manifest content accepted by [`decode_manifest_content`] (256 MiB).
pub const MAX_MANIFEST_CONTENT_JSON: usize = 256 << 20;

/// One manifest entry as stored in a manifest content.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestEntry {
    /// 32 hex characters of random bytes.
    pub id: ManifestId,
    /// Labels; `None` is written as `null` (tombstones).
    pub labels: Option<BTreeMap<String, String>>,
    /// Modification time (Go `time.Time`, written in UTC).
    #[serde(with = "gojson::time")]
    pub modified: DateTime<Utc>,
    /// Tombstone marker.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Raw JSON payload; `None` is written as `null`.
    pub data: Option<Box<RawValue>>,
}

impl PartialEq for ManifestEntry {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.labels == other.labels
            && self.modified == other.modified
            && self.deleted == other.deleted
            && self.data.as_ref().map(|r| r.get()) == other.data.as_ref().map(|r| r.get())
    }
}

impl ManifestEntry {
    /// A live entry with a payload already encoded as Go JSON (see [`gojson::to_go_json`]).
    pub fn new(
        id: ManifestId,
        labels: BTreeMap<String, String>,
        modified: DateTime<Utc>,
        payload_json: Vec<u8>,
    ) -> Result<Self> {
        let text = String::from_utf8(payload_json)
            .map_err(|e| Error::invalid("manifest payload", e.to_string()))?;
        let raw = RawValue::from_string(text).map_err(|e| Error::json("manifest payload", e))?;
        Ok(ManifestEntry {
            id,
            labels: Some(labels),
            modified,
            deleted: false,
            data: Some(raw),
        })
    }

    /// A deletion tombstone: `{"id":…,"labels":null,"modified":…,"deleted":true,"data":null}`.
    pub fn tombstone(id: ManifestId, modified: DateTime<Utc>) -> Self {
        ManifestEntry {
            id,
            labels: None,
            modified,
            deleted: true,
            data: None,
        }
    }

    /// The `type` label.
    pub fn manifest_type(&self) -> Option<&str> {
        self.labels.as_ref()?.get(TYPE_LABEL).map(String::as_str)
    }

    /// True when every label of `query` is present with the same value (kopia's
    /// `FindManifests` matching).
    pub fn matches(&self, query: &BTreeMap<String, String>) -> bool {
        let Some(labels) = &self.labels else {
            return query.is_empty();
        };
        query.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

impl<'de> Deserialize<'de> for ManifestEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ManifestEntry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a manifest entry object")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<ManifestEntry, A::Error> {
                let mut e = ManifestEntry {
                    id: ManifestId::default(),
                    labels: None,
                    modified: gojson::time::zero(),
                    deleted: false,
                    data: None,
                };
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.to_ascii_lowercase().as_str() {
                        "id" => {
                            e.id = ManifestId::new(
                                map.next_value::<Option<String>>()?.unwrap_or_default(),
                            )
                        }
                        "labels" => e.labels = map.next_value()?,
                        "modified" => {
                            let s: Option<String> = map.next_value()?;
                            if let Some(s) = s {
                                e.modified = gojson::time::parse(&s).map_err(de::Error::custom)?;
                            }
                        }
                        "deleted" => e.deleted = map.next_value::<Option<bool>>()?.unwrap_or(false),
                        "data" => e.data = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(e)
            }
        }
        d.deserialize_map(V)
    }
}

/// The top-level document `{"entries":[…]}`.
struct ManifestFile(Vec<ManifestEntry>);

impl<'de> Deserialize<'de> for ManifestFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ManifestFile;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a manifest object with an entries array")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<ManifestFile, A::Error> {
                let mut entries: Option<Vec<ManifestEntry>> = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key.eq_ignore_ascii_case("entries") {
                        if entries.is_some() {
                            return Err(de::Error::custom("repeated Entries field"));
                        }
                        // `null` is Go's nil slice (what encode_manifest_json writes for no
                        // entries); encoding/json reads it as empty.
                        let list: Option<Vec<Option<ManifestEntry>>> = map.next_value()?;
                        let list = list
                            .unwrap_or_default()
                            .into_iter()
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| de::Error::custom("null manifest entry"))?;
                        entries = Some(list);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(ManifestFile(entries.unwrap_or_default()))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Serialize)]
struct ManifestFileOut<'a> {
    entries: Option<&'a [ManifestEntry]>,
}

/// Parses the JSON of a manifest content (after gunzip).
pub fn decode_manifest_json(json: &[u8]) -> Result<Vec<ManifestEntry>> {
    serde_json::from_slice::<ManifestFile>(json)
        .map(|f| f.0)
        .map_err(|e| Error::json("manifest content", e))
}

/// Decodes a manifest content plaintext: gunzip, then parse `{"entries":[…]}`.
pub fn decode_manifest_content(plaintext: &[u8]) -> Result<Vec<ManifestEntry>> {
    let limit = u64::try_from(MAX_MANIFEST_CONTENT_JSON).unwrap_or(u64::MAX);
    let mut json = Vec::new();
    flate2::read::MultiGzDecoder::new(plaintext)
        .take(limit.saturating_add(1))
        .read_to_end(&mut json)
        .map_err(|e| Error::corrupt("manifest content", format!("gunzip: {e}")))?;
    if json.len() > MAX_MANIFEST_CONTENT_JSON {
        return Err(Error::corrupt(
            "manifest content",
            format!("more than {MAX_MANIFEST_CONTENT_JSON} bytes of JSON"),
        ));
    }
    decode_manifest_json(&json)
}

/// Exact kopia JSON of a manifest content (`json.Encoder`: compact plus `\n`). An empty list is
/// written as `null`, like Go's nil slice (kopia never writes an empty manifest content).
pub fn encode_manifest_json(entries: &[ManifestEntry]) -> Result<Vec<u8>> {
    gojson::to_go_json_line(&ManifestFileOut {
        entries: (!entries.is_empty()).then_some(entries),
    })
}

/// A manifest content plaintext: gzip of [`encode_manifest_json`]. Any gzip encoder yields a
/// valid content (its ID is the hash of these bytes, which kopia never recomputes).
pub fn encode_manifest_content(entries: &[ManifestEntry]) -> Result<Vec<u8>> {
    let json = encode_manifest_json(entries)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let io = |e: std::io::Error| Error::invalid("manifest content", e.to_string());
    gz.write_all(&json).map_err(io)?;
    gz.finish().map_err(io)
}

/// Merges entries from all manifest contents: per ID the strictly later `modified` wins
/// (ties: the first seen), then tombstones are dropped.
pub fn merge_entries(
    entries: impl IntoIterator<Item = ManifestEntry>,
) -> BTreeMap<ManifestId, ManifestEntry> {
    let mut merged: BTreeMap<ManifestId, ManifestEntry> = BTreeMap::new();
    for e in entries {
        match merged.get_mut(&e.id) {
            Some(prev) => {
                if e.modified > prev.modified {
                    *prev = e;
                }
            }
            None => {
                merged.insert(e.id.clone(), e);
            }
        }
    }
    merged.retain(|_, e| !e.deleted);
    merged
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const V_MANIFEST_JSON: &str = "{\"entries\":[{\"id\":\"000102030405060708090a0b0c0d0e0f\",\"labels\":{\"hostname\":\"myhost\",\"path\":\"/home/alice/data\",\"type\":\"snapshot\",\"username\":\"alice\"},\"modified\":\"2024-05-06T08:00:01.3Z\",\"data\":{\"id\":\"\",\"source\":{\"host\":\"myhost\",\"userName\":\"alice\",\"path\":\"/home/alice/data\"},\"description\":\"\",\"startTime\":\"2024-05-06T08:00:00.5Z\",\"endTime\":\"2024-05-06T08:00:01.25Z\",\"stats\":{\"totalSize\":11,\"excludedTotalSize\":0,\"fileCount\":2,\"cachedFiles\":0,\"nonCachedFiles\":2,\"dirCount\":1,\"excludedFileCount\":0,\"excludedDirCount\":0,\"ignoredErrorCount\":0,\"errorCount\":0},\"rootEntry\":{\"name\":\"data\",\"type\":\"d\",\"mode\":\"0755\",\"mtime\":\"2024-05-06T07:00:00Z\",\"uid\":1000,\"gid\":1000,\"obj\":\"k32dfecc64e9c4d951dac1feb8be75376\",\"summ\":{\"size\":11,\"files\":2,\"symlinks\":0,\"dirs\":1,\"maxTime\":\"2024-05-06T07:08:09.123456789Z\",\"numFailed\":0}}}},{\"id\":\"ffeeddccbbaa99887766554433221100\",\"labels\":null,\"modified\":\"2024-05-06T08:00:01.3Z\",\"deleted\":true,\"data\":null}]}\n";

    const V_MANIFEST_GZIP: &str = "1f8b08000000000002038d53cb72db300cbcf73378566ce8fdb8a6f1b197fad44e0f1409456c28d2435233713dfef7828a6aab9366a63a11e02eb8584017862638859e75df2f4c49d631004821831c0a28a1821a1a6881430f0224200c2c619af7a8897261a3f5c1f00989379d6340b7271e468af7a39d70cfb512b8973c70ba09e753447ac34f7eb4113b7b742b7f41b26bc2262bd5a0306ac9202b1ea07c80ea084d07d041bacbbf116f29d8ad8a29f67676c45e156dd5c417be6c5ff85820bd2dd10ba74e4159b3160edc85a35af8efd5c0ae8c6ad0c80f21e92e5b3054282c96051bb8feaa7e113c4d89fb2af42c511eef6948d8a0343edad9502b59c2041723ca03e5fc726bac79dca60822955bf19b9a877b15b8673fdfa09454cfc63a944fced94d16b721d9e2ac0d4fb428e7d8c03aafbf672ad932b87884ba2c6314de5b52bfb916fd98e3e8525ab6843ddf8fb6ff4994973c93030a5115d88a42b6652ab94807ec9b1eeb32afabe8e73c4d518dbf3939dcccf0e7492bf3f2661639e3175726fe7afca7241a54bb4bb3bc28abba69a338334f074ee5646c9fbe64ddb46140945288bee7bc6d9ba6aeabaa2c8b22cfb32ca50e36ff8699b5fecf5d468d2142829bf1cf6a47faf5c7f5d36f3edaf05ca1030000";

    fn t(s: &str) -> DateTime<Utc> {
        gojson::time::parse(s).unwrap()
    }

    // TEST-VECTORS.md §V-MANIFEST: gunzip → exact JSON; entries → exact JSON bytes.
    #[test]
    fn v_manifest_decode_and_encode() {
        let gz = hex::decode(V_MANIFEST_GZIP).unwrap();
        let mut json = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut json)
            .unwrap();
        assert_eq!(String::from_utf8(json).unwrap(), V_MANIFEST_JSON);

        let entries = decode_manifest_content(&gz).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].manifest_type(), Some("snapshot"));
        assert!(entries[1].deleted);
        assert_eq!(
            String::from_utf8(encode_manifest_json(&entries).unwrap()).unwrap(),
            V_MANIFEST_JSON
        );

        // Built from typed values.
        let data = crate::snapshot::SnapshotManifest::parse(
            entries[0].data.as_ref().unwrap().get().as_bytes(),
        )
        .unwrap();
        let labels = crate::snapshot::snapshot_labels(&data.source, &data.tags);
        let built = vec![
            ManifestEntry::new(
                ManifestId::new("000102030405060708090a0b0c0d0e0f"),
                labels,
                t("2024-05-06T08:00:01.3Z"),
                data.encode().unwrap(),
            )
            .unwrap(),
            ManifestEntry::tombstone(
                ManifestId::new("ffeeddccbbaa99887766554433221100"),
                t("2024-05-06T08:00:01.3Z"),
            ),
        ];
        assert_eq!(built, entries);
        assert_eq!(
            String::from_utf8(encode_manifest_json(&built).unwrap()).unwrap(),
            V_MANIFEST_JSON
        );
        let content = encode_manifest_content(&built).unwrap();
        assert_eq!(decode_manifest_content(&content).unwrap(), built);
    }

    #[test]
    fn tolerant_top_level_and_strict_duplicates() {
        let ok = br#"{"version":3,"Entries":[{"ID":"aa","Labels":{"type":"x"},"Modified":"2024-01-01T00:00:00+02:00","Data":{"a":1},"other":[1]}],"z":{"q":null}}"#;
        let e = decode_manifest_json(ok).unwrap();
        assert_eq!(e[0].id.as_str(), "aa");
        assert_eq!(e[0].modified, t("2023-12-31T22:00:00Z"));
        assert_eq!(e[0].data.as_ref().unwrap().get(), r#"{"a":1}"#);
        assert!(decode_manifest_json(br#"{"entries":[],"ENTRIES":[]}"#).is_err());
        assert!(decode_manifest_json(br#"{"entries":[null]}"#).is_err());
        assert!(decode_manifest_json(br#"{"entries":[{"modified":"yesterday"}]}"#).is_err());
        assert!(decode_manifest_json(br#"[]"#).is_err());
        assert!(decode_manifest_json(br#"{}"#).unwrap().is_empty());
        assert!(decode_manifest_content(b"not gzip").is_err());
        assert_eq!(encode_manifest_json(&[]).unwrap(), b"{\"entries\":null}\n");
    }

    // Regression (fuzz target `manifest`): a JSON object without `entries` (here a
    // maintenance-params payload) decodes as no entries, which encode as `{"entries":null}`;
    // decoding that failed with "invalid type: null, expected a sequence". Go reads a null
    // slice as empty, so the decoder does too and the round trip holds.
    #[test]
    fn null_entries_decode_as_empty() {
        let input = br#"{"owner":"fixture@fixture-host","quick":{"enabled":false,"interval":3600000000000},"full":{"enabled":true,"interval":86400000000000},"logRetention":{"maxTotalSize":1073741824,"maxCount":10000,"maxAge":2592000000000000},"extendObjectLocks":false,"listParallelism":0}"#;
        let entries = decode_manifest_json(input).unwrap();
        assert!(entries.is_empty());
        let json = encode_manifest_json(&entries).unwrap();
        assert!(decode_manifest_json(&json).unwrap().is_empty());
        assert!(
            decode_manifest_json(br#"{"entries":null}"#)
                .unwrap()
                .is_empty()
        );
        let content = encode_manifest_content(&entries).unwrap();
        assert!(decode_manifest_content(&content).unwrap().is_empty());
    }

    #[test]
    fn merge_rules() {
        let id = |s: &str| ManifestId::new(s);
        let live = |i: &str, m: &str, v: &str| {
            ManifestEntry::new(
                id(i),
                BTreeMap::from([("type".into(), "t".into())]),
                t(m),
                v.as_bytes().to_vec(),
            )
            .unwrap()
        };
        let merged = merge_entries(vec![
            live("a", "2024-01-01T00:00:00Z", "1"),
            live("a", "2024-01-01T00:00:00Z", "2"), // tie: first seen wins
            live("b", "2024-01-01T00:00:00Z", "1"),
            live("b", "2024-01-02T00:00:00Z", "2"), // later wins
            live("c", "2024-01-01T00:00:00Z", "1"),
            ManifestEntry::tombstone(id("c"), t("2024-01-01T00:00:01Z")),
            ManifestEntry::tombstone(id("d"), t("2024-01-01T00:00:00Z")),
            live("d", "2024-01-01T00:00:00Z", "1"), // tie with tombstone: tombstone seen first
            ManifestEntry::tombstone(id("e"), t("2024-01-01T00:00:00Z")),
            live("e", "2024-01-02T00:00:00Z", "1"), // re-created after delete
        ]);
        let got: Vec<(String, String)> = merged
            .values()
            .map(|e| (e.id.to_string(), e.data.as_ref().unwrap().get().to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("e".into(), "1".into())
            ]
        );
    }

    proptest! {
        #[test]
        fn manifest_roundtrip(
            items in proptest::collection::vec((".*", ".*", ".*", any::<bool>(), 0i64..253_402_300_799, 0u32..1_000_000_000), 1..6)
        ) {
            let entries: Vec<ManifestEntry> = items
                .into_iter()
                .enumerate()
                .map(|(i, (k, v, payload, deleted, secs, ns))| {
                    let modified = DateTime::from_timestamp(secs, ns).unwrap();
                    if deleted {
                        ManifestEntry::tombstone(ManifestId::new(format!("{i:032x}")), modified)
                    } else {
                        ManifestEntry::new(
                            ManifestId::new(format!("{i:032x}")),
                            BTreeMap::from([("type".into(), "x".into()), (k, v)]),
                            modified,
                            gojson::to_go_json(&payload).unwrap(),
                        ).unwrap()
                    }
                })
                .collect();
            let json = encode_manifest_json(&entries).unwrap();
            let back = decode_manifest_json(&json).unwrap();
            prop_assert_eq!(&back, &entries);
            prop_assert_eq!(encode_manifest_json(&back).unwrap(), json);
        }
    }
}
