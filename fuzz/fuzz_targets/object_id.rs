//! Object and content IDs (FORMAT.md §10.1): `ObjectId` and `ContentId` `FromStr`.
//!
//! Properties: parse → `to_string` → parse gives an equal ID, the printed form is canonical
//! (printing the re-parsed ID gives the same string), the accessors agree with the printed
//! form, the serde forms round-trip, and the binary index key of a content ID decodes back.
#![no_main]

use arkiv_format::ids::{ContentId, ObjectId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(cid) = s.parse::<ContentId>() {
        let printed = cid.to_string();
        let again: ContentId = printed.parse().expect("a printed content ID parses");
        assert_eq!(again, cid);
        assert_eq!(again.to_string(), printed);
        assert!(
            printed.eq_ignore_ascii_case(s),
            "{s:?} printed as {printed:?}"
        );
        assert_eq!(cid.is_empty(), s.is_empty());
        assert_eq!(cid.has_prefix(), cid.prefix().is_some());
        assert!(cid.iv().len() <= 16);
        if !cid.is_empty() {
            let key = cid.key();
            assert_eq!(ContentId::from_key(&key).expect("own key decodes"), cid);
        }
        let json = serde_json::to_string(&cid).expect("serialize");
        assert_eq!(
            serde_json::from_str::<ContentId>(&json).expect("deserialize"),
            cid
        );
    }

    if let Ok(oid) = s.parse::<ObjectId>() {
        let printed = oid.to_string();
        let again: ObjectId = printed.parse().expect("a printed object ID parses");
        assert_eq!(again, oid);
        assert_eq!(again.to_string(), printed);
        assert_eq!(oid.is_empty(), s.is_empty());
        assert_eq!(
            printed.len() - oid.content_id().to_string().len(),
            usize::from(oid.indirection()) + usize::from(oid.is_compressed()),
            "{printed:?}: prefix letters do not match indirection/compression"
        );
        if let Some(inner) = oid.index_object() {
            assert_eq!(inner.indirection() + 1, oid.indirection());
            assert_eq!(ObjectId::indirect(inner).expect("re-wrap"), oid);
        }
        let json = serde_json::to_string(&oid).expect("serialize");
        assert_eq!(
            serde_json::from_str::<ObjectId>(&json).expect("deserialize"),
            oid
        );
    }
});
