//! Manifests and the small JSON objects stored in them (FORMAT.md §12-§13):
//! `decode_manifest_content` (gzip), `decode_manifest_json`, `SnapshotManifest::parse`,
//! `Policy::parse` and `IndirectObject::parse`, all on the same input.
//!
//! Properties, for whichever decoders accept the input: the decoded value encodes, the encoding
//! decodes to an equal value (manifest payloads compared as JSON values, since the encoder
//! escapes them as Go does; `Policy`, which has no `PartialEq`, must re-encode to the same
//! bytes), encodings are stable after one round, and `merge_entries` /
//! `IndirectObject::find` do not panic.
#![no_main]

use arkiv_format::indirect::IndirectObject;
use arkiv_format::manifest::{self, ManifestEntry};
use arkiv_format::policy::Policy;
use arkiv_format::snapshot::SnapshotManifest;
use libfuzzer_sys::fuzz_target;

/// `a` and `b` are the same entries. Payloads are compared as JSON values: the encoder writes
/// them as Go's `json.Marshal` does a `json.RawMessage` (compacted, `<>&` escaped), so their
/// bytes may legitimately change.
fn same_entries(a: &[ManifestEntry], b: &[ManifestEntry]) -> bool {
    let value = |e: &ManifestEntry| {
        e.data
            .as_ref()
            .map(|d| serde_json::from_str::<serde_json::Value>(d.get()).ok())
    };
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.id == y.id
                && x.labels == y.labels
                && x.modified == y.modified
                && x.deleted == y.deleted
                && value(x) == value(y)
        })
}

fn check_entries(entries: &[ManifestEntry]) {
    for e in entries {
        let _ = e.manifest_type();
        if let Some(data) = &e.data {
            check_payload(data.get().as_bytes());
        }
    }
    let json = manifest::encode_manifest_json(entries).expect("decoded entries encode");
    let back = manifest::decode_manifest_json(&json).expect("encoded entries decode");
    assert!(
        same_entries(&back, entries),
        "manifest entries changed in a JSON round trip:\n{entries:?}\n{back:?}"
    );
    // After one round the encoding is a fixed point.
    let again = manifest::encode_manifest_json(&back).expect("re-encode");
    assert_eq!(again, json, "manifest encoding is not stable");
    let gz = manifest::encode_manifest_content(entries).expect("decoded entries compress");
    let back = manifest::decode_manifest_content(&gz).expect("compressed entries decode");
    assert!(
        same_entries(&back, entries),
        "manifest entries changed in a gzip round trip"
    );
    let _ = manifest::merge_entries(entries.to_vec());
}

fn check_payload(data: &[u8]) {
    if let Ok(m) = SnapshotManifest::parse(data) {
        let _ = (m.is_complete(), m.root_object_id());
        let enc = m.encode().expect("a parsed snapshot manifest encodes");
        let back = SnapshotManifest::parse(&enc).expect("encoded snapshot manifest parses");
        assert_eq!(back, m, "snapshot manifest changed in a round trip");
    }
    if let Ok(p) = Policy::parse(data) {
        let enc = p.encode().expect("a parsed policy encodes");
        let back = Policy::parse(&enc).expect("encoded policy parses");
        assert_eq!(
            back.encode().expect("re-encode"),
            enc,
            "policy changed in a round trip"
        );
    }
    if let Ok(ind) = IndirectObject::parse(data) {
        let total = ind.total_length();
        let _ = ind.find(0);
        let _ = ind.find(total.saturating_sub(1));
        assert_eq!(ind.find(total), None, "offset past the end found an entry");
        let enc = ind.encode().expect("a parsed indirect object encodes");
        let back = IndirectObject::parse(&enc).expect("encoded indirect object parses");
        assert_eq!(back, ind, "indirect object changed in a round trip");
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = manifest::decode_manifest_content(data) {
        check_entries(&entries);
    }
    if let Ok(entries) = manifest::decode_manifest_json(data) {
        check_entries(&entries);
    }
    check_payload(data);
});
