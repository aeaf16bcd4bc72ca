#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::*;
use proptest::prelude::*;

const P: &str = "p0123456789abcdef0123456789abcdef-s0123456789abcdef142";
const Q: &str = "q0123456789abcdef0123456789abcdef-s0123456789abcdef142";

#[allow(clippy::too_many_arguments)]
fn info(
    id: &str,
    pack: &str,
    offset: u32,
    packed: u32,
    original: u32,
    ts: i64,
    deleted: bool,
    compression: u32,
) -> Info {
    Info {
        content_id: id.parse().unwrap(),
        pack_blob_id: BlobId::new(pack),
        pack_offset: offset,
        packed_length: packed,
        original_length: original,
        timestamp_seconds: ts,
        deleted,
        format_version: 3,
        compression_header_id: compression,
        encryption_key_id: 0,
    }
}

// TEST-VECTORS.md §V-IDX entries.
fn e1() -> Info {
    info(
        "00112233445566778899aabbccddeeff",
        P,
        32,
        1028,
        1000,
        1_700_000_000,
        false,
        0,
    )
}
fn e2() -> Info {
    let id = "kffeeddccbbaa99887766554433221100";
    info(id, Q, 32, 200, 500, 1_700_000_001, false, 0x1101)
}
fn e3() -> Info {
    info(
        "0f0e0d0c0b0a09080706050403020100",
        P,
        1060,
        528,
        500,
        1_700_000_100,
        true,
        0,
    )
}
fn e4() -> Info {
    let id = "xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    info(id, Q, 232, 150, 300, 1_700_000_002, false, 0x1101)
}
fn e5() -> Info {
    let id = "11111111111111111111111111111111";
    info(id, P, 4096, 20_000_028, 20_000_000, 1_700_000_200, false, 0)
}

const V2_E1234: &str = "02110011000000040000000202000000000000112233445566778899aabbccddeeff6553f100000000200003e8000404000000000f0e0d0c0b0a090807060504030201006553f164800004240001f40002100000006bffeeddccbbaa998877665544332211006553f101000000200001f40000c800010178aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa6553f102000000e800012c00009600010136000000af36000000e50000000003000000110103007030313233343536373839616263646566303132333435363738396162636465662d73303132333435363738396162636465663134327130313233343536373839616263646566303132333435363738396162636465662d7330313233343536373839616263646566313432";
const V2_E13: &str = "02110010000000020000000101000000000000112233445566778899aabbccddeeff6553f100000000200003e80004040000000f0e0d0c0b0a090807060504030201006553f164800004240001f40002100000360000005e0000000003007030313233343536373839616263646566303132333435363738396162636465662d7330313233343536373839616263646566313432";
const V1_E13: &str = "01110014000000020000112233445566778899aabbccddeeff00006553f1000336000000520000002000000404000f0e0d0c0b0a0908070605040302010000006553f16403360000005280000424000002107030313233343536373839616263646566303132333435363738396162636465662d7330313233343536373839616263646566313432";
const V2_E5: &str = "021100130000000100000001010000000000111111111111111111111111111111116553f1c800001000312d00312d1c000000001136000000400000000003007030313233343536373839616263646566303132333435363738396162636465662d7330313233343536373839616263646566313432";

// TEST-VECTORS.md §V-PACK: local index plaintext (with 32 trailing "random" bytes).
const PACK_LOCAL_INDEX: &str = "0211001000000001000000010100000000004535fcbe761df7c62b5da83f8ba841656638d2c00000002000000b0000270000360000003d0000000003007030303131323233333434353536363737383839396161626263636464656566662d7330313233343536373839616263646566313432000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn v1_view(mut i: Info) -> Info {
    // What a v1 reader reports: original = packed - 28, no compression.
    i.original_length = i.packed_length - 28;
    i.compression_header_id = 0;
    i
}

fn all(r: &IndexReader<Vec<u8>>) -> Vec<Info> {
    r.iter().collect::<Result<Vec<_>>>().unwrap()
}

fn check_vector(hex_bytes: &str, version: u8, expected: &[Info]) {
    let bytes = hex::decode(hex_bytes).unwrap();
    let r = IndexReader::parse(bytes.clone()).unwrap();
    assert_eq!(r.version(), version);
    assert_eq!(r.len(), expected.len());
    assert_eq!(all(&r), expected);
    for e in expected {
        assert_eq!(r.get(&e.content_id).unwrap().as_ref(), Some(e));
    }
    let ids: Vec<ContentId> = r.iter_ids().collect::<Result<_>>().unwrap();
    assert_eq!(
        ids,
        expected.iter().map(|e| e.content_id).collect::<Vec<_>>()
    );
    // Absent IDs (below, between, above, other length).
    for absent in [
        "00000000000000000000000000000000",
        "0f0e0d0c0b0a09080706050403020101",
        "zffffffffffffffffffffffffffffffff",
        "0011",
    ] {
        assert_eq!(r.get(&absent.parse().unwrap()).unwrap(), None, "{absent}");
    }
}

#[test]
fn v_idx_v2_four_entries() {
    let built = build_v2([e1(), e2(), e3(), e4()], None).unwrap();
    assert_eq!(hex::encode(&built), V2_E1234);
    assert_eq!(built.len(), 283);
    // Input order does not matter.
    assert_eq!(build_v2([e4(), e3(), e2(), e1()], None).unwrap(), built);
    // Sorted by key: E1, E3, E2 (prefix k), E4 (prefix x).
    check_vector(V2_E1234, 2, &[e1(), e3(), e2(), e4()]);
    let bytes = hex::decode(V2_E1234).unwrap();
    assert_eq!(&bytes[2..4], &[0, 17]);
}

#[test]
fn v_idx_v2_one_format() {
    let built = build_v2([e3(), e1()], None).unwrap();
    assert_eq!(hex::encode(&built), V2_E13);
    assert_eq!(built.len(), 148);
    check_vector(V2_E13, 2, &[e1(), e3()]);
}

#[test]
fn v_idx_v1() {
    let built = build_v1([e1(), e3()], None).unwrap();
    assert_eq!(hex::encode(&built), V1_E13);
    assert_eq!(built.len(), 136);
    check_vector(V1_E13, 1, &[v1_view(e1()), v1_view(e3())]);
}

#[test]
fn v_idx_v2_long_lengths() {
    let built = build_v2([e5()], None).unwrap();
    assert_eq!(hex::encode(&built), V2_E5);
    assert_eq!(built.len(), 118);
    assert_eq!(&built[2..4], &[0, 19]);
    check_vector(V2_E5, 2, &[e5()]);
}

#[test]
fn v_pack_local_index() {
    let bytes = hex::decode(PACK_LOCAL_INDEX).unwrap();
    let r = IndexReader::parse(bytes.clone()).unwrap();
    assert_eq!((r.version(), r.len()), (2, 1));
    let expected = Info {
        content_id: "4535fcbe761df7c62b5da83f8ba84165".parse().unwrap(),
        pack_blob_id: BlobId::new("p00112233445566778899aabbccddeeff-s0123456789abcdef142"),
        pack_offset: 32,
        packed_length: 39,
        original_length: 11,
        timestamp_seconds: 1_715_000_000,
        deleted: false,
        format_version: 3,
        compression_header_id: 0,
        encryption_key_id: 0,
    };
    assert_eq!(all(&r), vec![expected.clone()]);
    // Rebuilding with the same suffix gives the same bytes.
    let suffix: [u8; 32] = bytes[bytes.len() - 32..].try_into().unwrap();
    assert_eq!(build_v2([expected], Some(&suffix)).unwrap(), bytes);
}

#[test]
fn v2_reader_tolerance() {
    // Pack index out of range (entry 0's pack index bytes are at 17 + 17 + 14).
    let mut b = hex::decode(V2_E13).unwrap();
    b[17 + 17 + 14 + 1] = 7;
    let r = IndexReader::parse(b).unwrap();
    let got = all(&r);
    assert_eq!(got[0].pack_blob_id.as_str(), INVALID_PACK_BLOB_ID);
    assert_eq!(got[1].pack_blob_id.as_str(), P);

    // Format index out of range (entrySize 17: format byte at value offset 16).
    let mut b = hex::decode(V2_E1234).unwrap();
    b[17 + 17 + 16] = 9;
    let got = all(&IndexReader::parse(b).unwrap());
    assert_eq!(
        (
            got[0].format_version,
            got[0].compression_header_id,
            got[0].encryption_key_id
        ),
        (0xFF, 0xFFFF, 0xFF)
    );
    assert_eq!(got[1], e3());

    // baseTimestamp is added.
    let mut b = hex::decode(V2_E13).unwrap();
    b[13..17].copy_from_slice(&1000u32.to_be_bytes());
    let got = all(&IndexReader::parse(b).unwrap());
    assert_eq!(got[0].timestamp_seconds, 1_700_001_000);
}

#[test]
fn v1_reader_tolerance() {
    // A pack name outside the index reads as the invalid pack ID, as in kopia.
    let mut b = hex::decode(V1_E13).unwrap();
    b[8 + 17 + 8..8 + 17 + 12].copy_from_slice(&5000u32.to_be_bytes());
    let got = all(&IndexReader::parse(b).unwrap());
    assert_eq!(got[0].pack_blob_id.as_str(), INVALID_PACK_BLOB_ID);
    // Original length saturates instead of wrapping.
    let mut b = hex::decode(V1_E13).unwrap();
    b[8 + 17 + 16..8 + 17 + 20].copy_from_slice(&5u32.to_be_bytes());
    let got = all(&IndexReader::parse(b).unwrap());
    assert_eq!((got[0].packed_length, got[0].original_length), (5, 0));
}

#[test]
fn empty_v1_index() {
    let b = build_v1(Vec::<Info>::new(), None).unwrap();
    assert_eq!(hex::encode(&b), "01ff001400000000");
    let r = IndexReader::parse(b).unwrap();
    assert!(r.is_empty());
    assert_eq!(r.get(&e1().content_id).unwrap(), None);
    assert_eq!(r.iter().count(), 0);
}

#[test]
fn hostile_headers_are_corrupt() {
    let corrupt = |b: Vec<u8>| {
        let r = IndexReader::parse(b);
        assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    };
    corrupt(vec![]);
    corrupt(vec![2]);
    corrupt(vec![1, 17, 0, 20]);
    // Entry count that overflows / exceeds the buffer.
    let mut b = hex::decode(V2_E13).unwrap();
    b[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    corrupt(b);
    let mut b = hex::decode(V1_E13).unwrap();
    b[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    corrupt(b);
    // Pack count beyond the end.
    let mut b = hex::decode(V2_E13).unwrap();
    b[8..12].copy_from_slice(&0x1000_0000u32.to_be_bytes());
    corrupt(b);
    // Pack name offset beyond the end.
    let mut b = hex::decode(V2_E13).unwrap();
    let pt = 17 + 2 * 33;
    b[pt + 1..pt + 5].copy_from_slice(&1000u32.to_be_bytes());
    corrupt(b);
    // Non-UTF-8 pack names.
    let mut b = hex::decode(V2_E13).unwrap();
    let n = b.len();
    b[n - 1] = 0xff;
    corrupt(b);
    // Bad entry sizes and key sizes.
    for (at, val) in [(3usize, 15u8), (3, 20), (1, 1), (1, 40)] {
        let mut b = hex::decode(V2_E13).unwrap();
        b[at] = val;
        corrupt(b);
    }
    // Unknown version.
    assert!(matches!(
        IndexReader::parse(vec![3u8; 40]),
        Err(Error::Unsupported { .. })
    ));
    // Non-UTF-8 v1 pack name: corrupt on access.
    let mut b = hex::decode(V1_E13).unwrap();
    let n = b.len();
    b[n - 1] = 0xff;
    let r = IndexReader::parse(b).unwrap();
    assert!(matches!(r.info_at(0), Err(Error::Corrupt { .. })));
    // Invalid prefix byte in a key: corrupt on access.
    let mut b = hex::decode(V2_E13).unwrap();
    b[17] = b'A';
    let r = IndexReader::parse(b).unwrap();
    assert!(matches!(r.id_at(0), Err(Error::Corrupt { .. })));
}

#[test]
fn truncations_never_panic() {
    for v in [V2_E1234, V2_E13, V1_E13, V2_E5, PACK_LOCAL_INDEX] {
        let b = hex::decode(v).unwrap();
        for n in 0..b.len() {
            if let Ok(r) = IndexReader::parse(b[..n].to_vec()) {
                let _ = r.iter().count();
                let _ = r.get(&e1().content_id);
            }
        }
    }
}

#[test]
fn build_errors() {
    let inv = |r: Result<Vec<u8>>| assert!(matches!(r, Err(Error::Invalid { .. })), "{r:?}");
    inv(build_v2(Vec::<Info>::new(), None));
    let mut big = e1();
    big.packed_length = 1 << 28;
    inv(build_v2([big.clone()], None));
    big.packed_length = 5;
    big.original_length = 1 << 28;
    inv(build_v2([big], None));
    let mut far = e1();
    far.pack_offset = 1 << 30;
    inv(build_v2([far], None));
    let mut short = e3();
    short.content_id = "abcd".parse().unwrap();
    inv(build_v2([e1(), short.clone()], None));
    inv(build_v1([e1(), short], None));
    let mut empty = e1();
    empty.content_id = ContentId::EMPTY;
    inv(build_v2([empty.clone()], None));
    inv(build_v1([empty], None));
    inv(build_v1([e2()], None)); // compressed
    let mut nopack = e1();
    nopack.pack_blob_id = BlobId::new("");
    inv(build_v1([nopack], None));
    // 256 distinct formats.
    let many: Vec<Info> = (0..256u32)
        .map(|i| {
            let mut e = e1();
            e.content_id = ContentId::from_hash(None, &i.to_be_bytes()).unwrap();
            e.compression_header_id = i;
            e
        })
        .collect();
    inv(build_v2(many.clone(), None));
    assert!(build_v2(many.into_iter().take(255), None).is_ok());
    assert!(matches!(
        build_shards([e1()], 3, 10),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        build_shards([e1()], 2, 0),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn entry_size_18_for_many_packs() {
    let n = MAX_SHORT_PACK_COUNT_PLUS_ONE;
    let entries: Vec<Info> = (0..n as u32)
        .map(|i| {
            let mut e = e1();
            e.content_id = ContentId::from_hash(None, &i.to_be_bytes()).unwrap();
            e.pack_blob_id = BlobId::new(format!("p{i}"));
            e
        })
        .collect();
    let b = build_v2(entries.clone(), None).unwrap();
    assert_eq!(&b[2..4], &[0, 18]);
    let r = IndexReader::parse(b).unwrap();
    assert_eq!(r.info_at(n - 1).unwrap(), entries[n - 1]);
    assert_eq!(
        r.get(&entries[65_000].content_id).unwrap().as_ref(),
        Some(&entries[65_000])
    );
}
const MAX_SHORT_PACK_COUNT_PLUS_ONE: usize = v2::MAX_SHORT_PACK_COUNT + 1;

#[test]
fn duplicates_keep_the_winner() {
    let mut newer = e1();
    newer.timestamp_seconds += 1;
    newer.pack_blob_id = BlobId::new(Q);
    let b = build_v2([newer.clone(), e1(), e3()], None).unwrap();
    let r = IndexReader::parse(b).unwrap();
    assert_eq!(all(&r), vec![newer, e3()]);
}

#[test]
fn fnv_known_answers() {
    assert_eq!(fnv1a32(b""), 0x811c_9dc5);
    assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
    assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
}

#[test]
fn sharding() {
    let entries = [e1(), e2(), e3(), e4(), e5()];
    // Fits into one shard: identical to build_v2.
    let one = build_v2_shards(entries.clone(), 5).unwrap();
    assert_eq!(one, vec![build_v2(entries.clone(), None).unwrap()]);
    assert!(build_v2_shards(Vec::<Info>::new(), 5).unwrap().is_empty());
    // 5 entries, shard size 2 → 3 buckets by FNV-1a of the ID string.
    let shards = build_v2_shards(entries.clone(), 2).unwrap();
    let mut expected: Vec<Vec<Info>> = vec![vec![]; 3];
    let mut sorted = entries.to_vec();
    sorted.sort_by_key(|e| e.content_id);
    for e in sorted {
        let h = fnv1a32(e.content_id.to_string().as_bytes()) % 3;
        expected[h as usize].push(e);
    }
    expected.retain(|b| !b.is_empty());
    let got: Vec<Vec<Info>> = shards
        .into_iter()
        .map(|s| all(&IndexReader::parse(s).unwrap()))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn merge_rule() {
    let a = e1();
    let mut later = a.clone();
    later.timestamp_seconds += 1;
    later.deleted = true;
    assert!(entry_wins(&later, &a) && !entry_wins(&a, &later));
    let mut del = a.clone();
    del.deleted = true;
    assert!(entry_wins(&a, &del) && !entry_wins(&del, &a));
    let mut other_pack = a.clone();
    other_pack.pack_blob_id = BlobId::new(Q);
    assert!(entry_wins(&other_pack, &a));
    assert!(!entry_wins(&a, &a));
    assert_eq!(
        pick_winner([a.clone(), later.clone(), del.clone()]),
        Some(later.clone())
    );
    assert_eq!(pick_winner(Vec::new()), None);

    // Watermark: a deleted winner at/below it hides the content; older live entries stay hidden.
    let wm = DateTime::from_timestamp(later.timestamp_seconds, 0);
    assert_eq!(resolve([a.clone(), later.clone()], wm), None);
    let wm_before = DateTime::from_timestamp(later.timestamp_seconds - 1, 999_000_000);
    assert_eq!(
        resolve([a.clone(), later.clone()], wm_before),
        Some(later.clone())
    );
    assert_eq!(resolve([a.clone(), later.clone()], None), Some(later));
    // Live entries are never hidden.
    assert_eq!(resolve([a.clone()], wm), Some(a));
}

#[test]
fn merged_index() {
    let mut e1_del = e1();
    e1_del.deleted = true;
    e1_del.timestamp_seconds += 10;
    let mut e2_new = e2();
    e2_new.timestamp_seconds += 5;
    e2_new.pack_blob_id = BlobId::new("q-other");
    let a = IndexReader::parse(build_v2([e1(), e2(), e3()], None).unwrap()).unwrap();
    let b = IndexReader::parse(build_v2([e1_del.clone(), e2_new.clone(), e4()], None).unwrap())
        .unwrap();
    let readers = [a, b];
    let m = MergedIndex::new(&readers, None);
    let got: Vec<Info> = m.iter().collect::<Result<_>>().unwrap();
    assert_eq!(got, vec![e1_del.clone(), e3(), e2_new.clone(), e4()]);
    assert_eq!(m.get(&e1().content_id).unwrap(), Some(e1_del.clone()));
    // e3 is deleted at 1_700_000_100; e1_del at 1_700_000_010.
    let m = MergedIndex::new(&readers, DateTime::from_timestamp(1_700_000_050, 0));
    let got: Vec<Info> = m.iter().collect::<Result<_>>().unwrap();
    assert_eq!(got, vec![e3(), e2_new, e4()]);
    assert_eq!(m.get(&e1().content_id).unwrap(), None);
}

fn arb_info(hash_len: usize) -> impl Strategy<Value = Info> {
    (
        prop::option::of(prop::sample::select(vec![b'k', b'm', b'x', b'g', b'z'])),
        prop::collection::vec(any::<u8>(), hash_len),
        prop::sample::select(vec!["p1", "p2", "q3", "", P]),
        0u32..(1 << 30),
        0u32..(1 << 28),
        0u32..(1 << 28),
        0i64..=u32::MAX as i64,
        any::<bool>(),
        prop::sample::select(vec![1u8, 2, 3]),
        prop::sample::select(vec![0u32, 0x1100, 0x1101]),
    )
        .prop_map(
            |(prefix, hash, pack, off, packed, orig, ts, deleted, fv, comp)| Info {
                content_id: ContentId::from_hash(prefix, &hash).unwrap(),
                pack_blob_id: BlobId::new(pack),
                pack_offset: off,
                packed_length: packed,
                original_length: orig,
                timestamp_seconds: ts,
                deleted,
                format_version: fv,
                compression_header_id: comp,
                encryption_key_id: 0,
            },
        )
}

fn expected_unique(entries: &[Info]) -> Vec<Info> {
    let mut by_id: BTreeMap<ContentId, Vec<Info>> = BTreeMap::new();
    for e in entries {
        by_id.entry(e.content_id).or_default().push(e.clone());
    }
    by_id.into_values().filter_map(pick_winner).collect()
}

proptest! {
    #[test]
    fn v2_roundtrip(entries in prop::collection::vec(arb_info(16), 1..60)) {
        let b = build_v2(entries.clone(), None).unwrap();
        let r = IndexReader::parse(b).unwrap();
        let expected = expected_unique(&entries);
        prop_assert_eq!(all(&r), expected.clone());
        for e in &expected {
            prop_assert_eq!(r.get(&e.content_id).unwrap(), Some(e.clone()));
        }
    }

    #[test]
    fn v1_roundtrip(entries in prop::collection::vec(arb_info(32), 0..40)) {
        let entries: Vec<Info> = entries
            .into_iter()
            .filter(|e| !e.pack_blob_id.as_str().is_empty())
            .map(|mut e| {
                e.compression_header_id = 0;
                e.packed_length = e.packed_length.max(28);
                e
            })
            .collect();
        let b = build_v1(entries.clone(), None).unwrap();
        let r = IndexReader::parse(b).unwrap();
        let expected: Vec<Info> = expected_unique(&entries).into_iter().map(v1_view).collect();
        prop_assert_eq!(all(&r), expected);
    }

    #[test]
    fn winner_is_order_independent(
        mut cands in prop::collection::vec(arb_info(4), 1..8),
        seed in any::<u64>(),
    ) {
        let id = cands[0].content_id;
        for c in &mut cands { c.content_id = id; }
        let w = pick_winner(cands.clone()).unwrap();
        // entry_wins is a strict order: irreflexive and asymmetric.
        for a in &cands {
            prop_assert!(!entry_wins(a, a));
            for b in &cands { prop_assert!(!(entry_wins(a, b) && entry_wins(b, a))); }
            prop_assert!(!entry_wins(a, &w));
        }
        let mut shuffled = cands.clone();
        let n = shuffled.len();
        shuffled.rotate_left((seed as usize) % n);
        if seed & 1 == 1 { shuffled.reverse(); }
        let w2 = pick_winner(shuffled).unwrap();
        // Equal up to exact ties (same timestamp, deleted flag and pack).
        prop_assert!(!entry_wins(&w, &w2) && !entry_wins(&w2, &w));
    }

    #[test]
    fn merged_equals_union(
        a in prop::collection::vec(arb_info(2), 1..30),
        b in prop::collection::vec(arb_info(2), 1..30),
        wm in prop::option::of(0i64..=u32::MAX as i64),
    ) {
        let wm = wm.and_then(|s| DateTime::from_timestamp(s, 0));
        let readers = [
            IndexReader::parse(build_v2(a.clone(), None).unwrap()).unwrap(),
            IndexReader::parse(build_v2(b.clone(), None).unwrap()).unwrap(),
        ];
        let m = MergedIndex::new(&readers, wm);
        let got: Vec<Info> = m.iter().collect::<Result<_>>().unwrap();
        let mut union = expected_unique(&a);
        union.extend(expected_unique(&b));
        let expected: Vec<Info> = expected_unique(&union)
            .into_iter()
            .filter(|w| !hidden_by_watermark(w, wm))
            .collect();
        prop_assert_eq!(&got, &expected);
        for e in &expected {
            prop_assert_eq!(m.get(&e.content_id).unwrap(), Some(e.clone()));
        }
    }

    #[test]
    fn shards_partition_by_fnv(entries in prop::collection::vec(arb_info(3), 1..80), size in 1usize..30) {
        let unique = expected_unique(&entries);
        let shards = build_v2_shards(entries, size).unwrap();
        let n = unique.len().div_ceil(size) as u32;
        let mut seen = Vec::new();
        for s in shards {
            let got = all(&IndexReader::parse(s).unwrap());
            prop_assert!(!got.is_empty());
            let bucket = |e: &Info| fnv1a32(e.content_id.to_string().as_bytes()) % n.max(1);
            if n > 1 {
                prop_assert!(got.iter().all(|e| bucket(e) == bucket(&got[0])));
            }
            seen.extend(got);
        }
        seen.sort_by_key(|e| e.content_id);
        prop_assert_eq!(seen, unique);
    }

    #[test]
    fn random_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..400), v in 1u8..=2) {
        if let Some(b) = bytes.first_mut() { *b = v; }
        if let Ok(r) = IndexReader::parse(bytes) {
            for i in r.iter().take(1000) { let _ = i; }
            let _ = r.get(&"00112233445566778899aabbccddeeff".parse().unwrap());
        }
    }
}
