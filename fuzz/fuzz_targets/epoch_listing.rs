//! Epoch manager state from a listing of `x` blobs (FORMAT.md §9):
//! `EpochState::from_listing` and the queries maintenance and index loading make.
//!
//! Input: one blob name a line (duplicates dropped; the position stands in for length and
//! timestamp).
//! Properties: nothing panics or runs unboundedly; every live index blob and every blob in a
//! compaction set or range checkpoint comes from the listing; the state does not depend on
//! listing order.
#![no_main]

use std::collections::BTreeSet;

use arkiv_format::ids::BlobId;
use arkiv_format::indexblob::BlobListing;
use arkiv_format::indexblob::epoch::{self, EpochState};
use chrono::DateTime;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Unique names (a storage listing has no duplicates), in input order.
    let mut unique = BTreeSet::new();
    let listing: Vec<BlobListing> = text
        .lines()
        .filter(|name| unique.insert(*name))
        .enumerate()
        .map(|(i, name)| BlobListing {
            id: BlobId::new(name),
            length: i as u64,
            timestamp: DateTime::from_timestamp(1_795_306_976 + i as i64, 0).expect("time"),
        })
        .collect();
    let names: BTreeSet<&str> = listing.iter().map(|b| b.id.as_str()).collect();

    let st = EpochState::from_listing(&listing);
    let _ = (st.last_settled_epoch(), st.is_settled(0));
    let _ = st.oldest_uncompacted_epoch();
    for b in st.live_index_blob_listings() {
        assert!(
            names.contains(b.id.as_str()),
            "live blob {} not listed",
            b.id
        );
    }
    for set in st.single_epoch_compactions.values() {
        assert!(set.iter().all(|b| names.contains(b.id.as_str())));
    }
    for r in &st.longest_range_checkpoints {
        assert!(r.min_epoch <= r.max_epoch);
        assert!(r.blobs.iter().all(|b| names.contains(b.id.as_str())));
    }

    let mut reversed = listing.clone();
    reversed.reverse();
    assert_eq!(
        EpochState::from_listing(&reversed),
        st,
        "state depends on listing order"
    );

    for name in text.lines().take(16) {
        let _ = epoch::epoch_number_from_blob_id(name);
        let _ = epoch::epoch_range_from_blob_id(name);
        let _ = epoch::deletion_watermark_from_blob_id(name);
    }
    let _ = epoch::find_all_complete_sets(&names.iter().collect::<Vec<_>>());
});
