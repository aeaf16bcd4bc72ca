use super::*;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn b(id: &str) -> BlobListing {
    BlobListing {
        id: BlobId::new(id),
        length: 1000,
        timestamp: t(1_700_000_000),
    }
}

fn listing(ids: &[&str]) -> Vec<BlobListing> {
    ids.iter().map(|s| b(s)).collect()
}

fn live(ids: &[&str]) -> Vec<String> {
    EpochState::from_listing(&listing(ids))
        .live_index_blobs()
        .into_iter()
        .map(BlobId::into_string)
        .collect()
}

// TEST-VECTORS.md §V-EPOCH (kopia internal/epoch/epoch_utils_test.go).
#[test]
fn v_epoch_numbers() {
    let cases: &[(&str, Option<u64>)] = &[
        ("pppp9", Some(9)),
        ("x7", Some(7)),
        ("x01234_1235", Some(1234)),
        ("x0_1235", Some(0)),
        ("abc01234_", Some(1234)),
        ("abc1234_", Some(1234)),
        ("abc1234_xxxx-sadfasd", Some(1234)),
        ("_", None),
        ("a_", None),
        ("x123x_", None),
    ];
    for (id, want) in cases {
        assert_eq!(epoch_number_from_blob_id(id), *want, "{id}");
    }
    assert_eq!(epoch_number_from_blob_id("x99999999999999999999_"), None);
}

// TEST-VECTORS.md §V-EPOCH (kopia internal/completeset/complete_set_test.go).
#[test]
fn v_epoch_complete_sets() {
    let cases: &[(&[&str], Option<&[&str]>)] = &[
        (&["a-s0-c2", "b-s0-c2"], Some(&["a-s0-c2", "b-s0-c2"])),
        (&["a-s0-c2", "malformed", "b-s0-c2"], Some(&["malformed"])),
        (
            &["a-s0-c2", "malformed-s0-x2", "b-s0-c2"],
            Some(&["malformed-s0-x2"]),
        ),
        (
            &["a-s0-c2", "malformed-s0-cNAN", "b-s0-c2"],
            Some(&["malformed-s0-cNAN"]),
        ),
        (
            &["foo-s0-c2", "aaa-s1-c2", "bar-s0-c2", "bbb-s1-c2"],
            Some(&["foo-s0-c2", "bar-s0-c2"]),
        ),
        (&["foo-s0-c3", "aaa-s1-c3", "bar-s0-c3", "bbb-s1-c3"], None),
    ];
    for (input, want) in cases {
        let got = first_complete_set(input).map(|v| v.into_iter().copied().collect::<Vec<_>>());
        assert_eq!(got.as_deref(), *want, "{input:?}");
    }
    assert_eq!(first_complete_set::<&str>(&[]), None);
    // All sets, in completion order.
    let all = find_all_complete_sets(&["a-s1-c2", "x", "b-s2-c1", "c-s1-c2"]);
    assert_eq!(
        all,
        vec![vec![&"x"], vec![&"b-s2-c1"], vec![&"a-s1-c2", &"c-s1-c2"]]
    );
}

#[test]
fn ranges_and_watermarks_from_ids() {
    assert_eq!(epoch_range_from_blob_id("xr0_7_abc-s1-c1"), Some((0, 7)));
    assert_eq!(epoch_range_from_blob_id("xr3_12_"), Some((3, 12)));
    assert_eq!(epoch_range_from_blob_id("xr3_12"), None);
    assert_eq!(epoch_range_from_blob_id("xr5_3_x"), None);
    assert_eq!(epoch_range_from_blob_id("xr5_-1_x"), None);
    assert_eq!(
        deletion_watermark_from_blob_id("xw1700000000"),
        Some(t(1_700_000_000))
    );
    assert_eq!(deletion_watermark_from_blob_id("xwabc"), None);
}

#[test]
fn naming_helpers() {
    assert_eq!(uncompacted_blob_prefix(0), "xn0_");
    assert_eq!(uncompacted_blob_prefix(12), "xn12_");
    assert_eq!(single_epoch_compaction_prefix(3), "xs3_");
    assert_eq!(range_checkpoint_prefix(0, 7), "xr0_7_");
    assert_eq!(epoch_marker_id(5).as_str(), "xe5");
    assert_eq!(
        deletion_watermark_id(1_700_000_000).as_str(),
        "xw1700000000"
    );
    let r = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    assert_eq!(
        session_set_suffix("s0123456789abcdef142", 1),
        "s0123456789abcdef142-c1"
    );
    assert_eq!(compaction_set_suffix(r, 3), "s0123456789abcdef-c3");
}

#[test]
fn session_ids() {
    let r = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    // 322 × 30 days after 2000-01-01 is 2026-06-13 (the session of TEST-VECTORS.md).
    assert_eq!(
        session_id(r, at("2026-06-13T00:00:00Z")),
        "s0123456789abcdef142"
    );
    assert_eq!(
        session_id(r, at("2026-06-15T10:00:00Z")),
        "s0123456789abcdef142"
    );
    assert_eq!(
        session_id(r, at("2026-06-12T23:59:59.999Z")),
        "s0123456789abcdef141"
    );
    assert_eq!(
        session_id(r, at("2000-01-01T00:00:00Z")),
        "s0123456789abcdef0"
    );
    // Go's duration division truncates toward zero.
    assert_eq!(
        session_id(r, at("1999-12-31T00:00:00Z")),
        "s0123456789abcdef0"
    );
    assert_eq!(
        session_id(r, at("1999-11-01T00:00:00Z")),
        "s0123456789abcdef-2"
    );
    // Go's Time.Sub saturates at about 292 years.
    assert_eq!(
        session_id(r, at("2400-01-01T00:00:00Z")),
        format!("s0123456789abcdef{:x}", i64::MAX / SESSION_EPOCH_NANOS)
    );
}

#[test]
fn no_markers_means_epoch_zero() {
    let ids = [
        "xn0_aa-s1-c1",
        "xn0_bb-s2-c1",
        "xn1_cc-s3-c1",
        "xn2_dd-s4-c1",
    ];
    let st = EpochState::from_listing(&listing(&ids));
    assert_eq!(st.write_epoch, 0);
    assert_eq!(st.deletion_watermark, None);
    assert_eq!(st.last_settled_epoch(), None);
    // Epochs 0..=1 are read; an xn2 blob (beyond writeEpoch + 1) is not.
    assert_eq!(live(&ids), ["xn0_aa-s1-c1", "xn0_bb-s2-c1", "xn1_cc-s3-c1"]);
    assert_eq!(live(&[]), Vec::<String>::new());
}

#[test]
fn settled_epochs_use_single_epoch_compactions() {
    let ids = [
        "xe0",
        "xe1",
        "xe3",
        "xe5", // markers (gaps are fine: the max counts)
        "xn0_a0-sA-c1",
        "xs0_c0-s7-c1", // epoch 0 compacted
        "xn1_a1-sB-c1",
        "xs1_c1-s8-c2", // epoch 1: incomplete compaction → xn
        "xn2_a2-sC-c1",
        "xn2_b2-sD-c1",
        "xs2_c2-s9-c2",
        "xs2_d2-s9-c2", // epoch 2 compacted
        "xn3_a3-sE-c1",
        "xs3_c3-sF-c1",
        "xn4_a4-sG-c1",
        "xs4_c4-sH-c1", // epoch 4 not settled: xs ignored
        "xn5_a5-sI-c1",
        "xn5_b5-sJ-c2", // incomplete uncompacted sets are not filtered
        "xn6_a6-sK-c1",
        "xn7_a7-sL-c1", // beyond writeEpoch + 1
        "xn05_zz-sM-c1",
        "xn5zz", // not in any epoch's prefix
        "xw1700000000",
        "xw1800000000",
        "xwbad",
        "xq-unrelated",
    ];
    let st = EpochState::from_listing(&listing(&ids));
    assert_eq!(st.write_epoch, 5);
    assert_eq!(st.last_settled_epoch(), Some(3));
    assert!(st.is_settled(3) && !st.is_settled(4));
    assert_eq!(st.deletion_watermark, Some(t(1_800_000_000)));
    assert_eq!(st.deletion_watermark_blobs.len(), 3);
    assert_eq!(st.epoch_markers.len(), 4);
    assert_eq!(
        st.single_epoch_compactions
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        [0, 2, 3, 4]
    );
    assert_eq!(st.uncompacted_blobs(5).len(), 2);
    assert_eq!(st.oldest_uncompacted_epoch(), 1);
    assert_eq!(
        live(&ids),
        [
            "xs0_c0-s7-c1",
            "xn1_a1-sB-c1",
            "xs2_c2-s9-c2",
            "xs2_d2-s9-c2",
            "xs3_c3-sF-c1",
            "xn4_a4-sG-c1",
            "xn5_a5-sI-c1",
            "xn5_b5-sJ-c2",
            "xn6_a6-sK-c1",
        ]
    );
    // Listing order does not matter: the listing is sorted first.
    let mut rev = listing(&ids);
    rev.reverse();
    assert_eq!(EpochState::from_listing(&rev), st);
}

#[test]
fn range_checkpoint_chain() {
    let ids = [
        "xe9",
        "xr0_2_r1-s1-c1",
        "xr0_4_r2-s2-c2", // incomplete: ignored
        "xr3_5_r3-s3-c1",
        "xr6_6_r4-s4-c1",
        "xr0_9_r5-s5-c2", // incomplete
        "xn5_old-sA-c1",  // covered by the chain
        "xs6_c6-s6-c1",   // read: kopia skips the one-epoch range (6,6) (max not > start 6)
        "xs7_c7-s7-c1",   // settled (≤ 7): used
        "xn7_n7-sB-c1",
        "xn8_n8-sC-c1",
        "xn9_n9-sD-c1",
        "xn10_n10-sE-c1",
    ];
    let st = EpochState::from_listing(&listing(&ids));
    let chain: Vec<(u64, u64)> = st
        .longest_range_checkpoints
        .iter()
        .map(|r| (r.min_epoch, r.max_epoch))
        .collect();
    assert_eq!(chain, [(0, 2), (3, 5), (6, 6)]);
    assert_eq!(st.oldest_uncompacted_epoch(), 8);
    assert_eq!(
        live(&ids),
        [
            "xr0_2_r1-s1-c1",
            "xr3_5_r3-s3-c1",
            "xs6_c6-s6-c1",
            "xs7_c7-s7-c1",
            "xn8_n8-sC-c1",
            "xn9_n9-sD-c1",
            "xn10_n10-sE-c1",
        ]
    );
}

#[test]
fn longest_chain_prefers_reach_then_fewer_ranges() {
    let chain = |ids: &[&str]| -> Vec<(u64, u64)> {
        EpochState::from_listing(&listing(ids))
            .longest_range_checkpoints
            .iter()
            .map(|r| (r.min_epoch, r.max_epoch))
            .collect()
    };
    // Same reach: fewer ranges win.
    assert_eq!(chain(&["xr0_2_a", "xr3_6_b", "xr0_6_c"]), [(0, 6)]);
    // Farther reach wins even with more ranges.
    assert_eq!(chain(&["xr0_3_a", "xr4_7_b", "xr0_6_c"]), [(0, 3), (4, 7)]);
    // Chains must start at 0.
    assert_eq!(chain(&["xr1_5_a"]), Vec::<(u64, u64)>::new());
    // Kopia never picks a chain that ends at epoch 0.
    assert_eq!(chain(&["xr0_0_a"]), Vec::<(u64, u64)>::new());
    assert_eq!(chain(&["xr0_0_a", "xr1_3_b"]), [(0, 0), (1, 3)]);
    // A gap stops the chain.
    assert_eq!(chain(&["xr0_2_a", "xr4_6_b"]), [(0, 2)]);
}

#[test]
fn range_checkpoint_not_beyond_start_is_skipped() {
    // Kopia adds a range's blobs only if its max is beyond the running start epoch: in the
    // chain (0,0),(1,1) the first range is skipped (max 0 is not > 0) and the second read;
    // epoch 0 is then not read at all (maintenance never writes such a range).
    let ids = ["xe3", "xr0_0_a", "xr1_1_b", "xn0_z-s1-c1", "xn2_y-s2-c1"];
    let st = EpochState::from_listing(&listing(&ids));
    assert_eq!(st.longest_range_checkpoints.len(), 2);
    assert_eq!(live(&ids), ["xr1_1_b", "xn2_y-s2-c1"]);
}

#[test]
fn many_chained_ranges_do_not_recurse() {
    let ids: Vec<String> = (0..20_000u64).map(|e| format!("xr{e}_{e}_h")).collect();
    let l: Vec<BlobListing> = ids.iter().map(|s| b(s)).collect();
    let st = EpochState::from_listing(&l);
    assert_eq!(st.longest_range_checkpoints.len(), 20_000);
}

// Regression (fuzz target `epoch_listing`, fuzz/artifacts/epoch_listing/timeout-74de2f03…):
// `xexw17953069761` is an epoch marker for epoch 17953069761 (leading non-digits are skipped),
// and the live set used to be computed by visiting every epoch up to the write epoch + 1, which
// hung index loading. Only epochs with blobs are visited now; the result is unchanged.
#[test]
fn huge_write_epoch_does_not_loop_over_every_epoch() {
    let ids = [
        "xe0",
        "xexw17953069761",
        "xe2",
        "xn0_00ffc6be8985af0789196e0199fcde69-sbcb94eb192395a06147-c1",
        "xs0_012345bd249519aa10ec539c8-c1",
        "xw1795306976",
        "xn17953069762_ab-s1-c1",
    ];
    let st = EpochState::from_listing(&listing(&ids));
    assert_eq!(st.write_epoch, 17_953_069_761);
    // Epoch 0 is settled and has a complete single-epoch compaction; the epoch after the write
    // epoch is read uncompacted.
    assert_eq!(
        live(&ids),
        ["xs0_012345bd249519aa10ec539c8-c1", "xn17953069762_ab-s1-c1"]
    );
    // The largest epoch a name can carry (Go's Atoi: i64::MAX): nothing overflows.
    let top = format!("xe{}", i64::MAX);
    assert_eq!(live(&[top.as_str(), "xn0_a-s1-c1"]), ["xn0_a-s1-c1"]);
}

#[test]
fn range_checkpoint_beyond_write_epoch_plus_one() {
    // The chain ends past writeEpoch + 1: nothing after it is read (and no empty range panics).
    let ids = ["xe0", "xr0_5_a", "xn0_z-s1-c1"];
    assert_eq!(live(&ids), ["xr0_5_a"]);
}

// Names from the kopia-written fixtures (shared/kopia/fixtures/expected/repo-?.blob-list.txt,
// kopia 0.20.1, written 2026-11-22).
#[test]
fn kopia_fixture_listings() {
    let repo_a = [
        "xn0_00ffc6be8985af0789196e0199fcde69-sbcb94eb192395a06147-c1",
        "xn0_c5a5a85fd68f8f14d6f1c1899cf4d0ee-s070604cc32d2924c147-c1",
        "xn0_c7ae3922e89f33ef8e724b7ea3de06cc-sc0778c32239ee8b4147-c1",
        "xn0_d8bd249519aa10ec539c8b11ad2f21c7-sb654f1d6a8a0b4d9147-c1",
    ];
    let st = EpochState::from_listing(&listing(&repo_a));
    assert_eq!((st.write_epoch, st.deletion_watermark), (0, None));
    assert_eq!(live(&repo_a), repo_a);
    for id in repo_a {
        assert_eq!(epoch_number_from_blob_id(id), Some(0));
        assert_eq!(first_complete_set(&[id]).unwrap(), [&id]);
    }
    // Their session IDs end in the session epoch of 2026-11-22: 0x147.
    let now = DateTime::parse_from_rfc3339("2026-11-22T00:23:01Z").unwrap();
    let sid = session_id(
        [0xbc, 0xb9, 0x4e, 0xb1, 0x92, 0x39, 0x5a, 0x06],
        now.to_utc(),
    );
    assert_eq!(sid, "sbcb94eb192395a06147");
    assert!(repo_a[0].ends_with(&format!("-{}", session_set_suffix(&sid, 1))));
}

fn missing(ids: &[&str]) -> Vec<String> {
    EpochState::from_listing(&listing(ids)).missing_index_blobs()
}

#[test]
fn missing_index_blobs_of_closed_epochs_and_incomplete_sets() {
    // Healthy: epoch 0 closed with its blobs; epoch 1 open and empty.
    assert!(missing(&["xe0", "xe1", "xn0_aa-s1-c1"]).is_empty());
    // Covered by a single-epoch compaction, by a range checkpoint, or never closed.
    assert!(missing(&["xe1", "xs0_aa-s9-c1"]).is_empty());
    assert!(missing(&["xe1", "xe2", "xr0_1_aa-s9-c1"]).is_empty());
    assert!(missing(&["xe0"]).is_empty());
    // Epoch 0 was closed but every index blob of it is gone.
    let m = missing(&["xe0", "xe1", "xn1_bb-s2-c1"]);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].starts_with("epoch 0 has no index blob"), "{m:?}");
    // An incomplete xs set does not cover its epoch.
    assert_eq!(missing(&["xe1", "xs0_aa-s9-c2"]).len(), 1);
    // One shard of a three-blob set is lost.
    let m = missing(&["xe0", "xn0_aa-s1-c3", "xn0_bb-s1-c3", "xn0_cc-s2-c1"]);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("-s1-c3 of epoch 0: 2 of 3"), "{m:?}");
    // A hostile marker number is one entry, not billions of iterations.
    assert_eq!(missing(&["xe99999999999", "xn0_aa-s1-c1"]).len(), 1);
}
