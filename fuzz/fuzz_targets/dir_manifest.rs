//! Directory listings (`kopia:directory` objects, FORMAT.md §11): `DirManifest::parse`.
//!
//! Properties: a parsed listing encodes (kopia's exact bytes), the encoding parses back to the
//! same listing, and encoding that again gives the same bytes (the encoder is a fixed point
//! after one round). Mode and time helpers run on every entry.
#![no_main]

use arkiv_format::snapshot::{self, DirManifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = DirManifest::parse(data) else {
        return;
    };
    for e in &dir.entries {
        let _ = snapshot::posix_mode_from_go(e.mode);
        let _ = e.object.index_object();
        let _ = e.entry_type.as_str();
    }
    let enc = dir.encode().expect("a parsed listing encodes");
    let again = DirManifest::parse(&enc).expect("encoded listing parses");
    assert_eq!(again, dir, "listing changed in a round trip");
    assert_eq!(
        again.encode().expect("re-encode"),
        enc,
        "encoding is not stable"
    );

    let mut sorted = dir.entries.clone();
    snapshot::sort_entries_like_kopia(&mut sorted);
});
