// Shared body of the index_v1 and index_v2 targets (included with `include!`).
//
// Properties checked on any input that `IndexReader::parse` accepts:
// * every accessor (`len`, `iter`, `iter_ids`, `id_at`, `info_at`, `get`, `iter_from`) returns
//   without panicking, however the tables are corrupted;
// * `iter()` and `iter_ids()` agree entry by entry;
// * a lookup that finds something finds the ID that was asked for;
// * when the entries are strictly ascending (what a well-formed index guarantees), `get` finds
//   every entry and returns exactly what `iter` returned;
// * when every entry decodes, the entries rebuilt with the same version's builder parse back
//   to the same entries (builders may refuse values the format cannot hold, never panic).

use arkiv_format::ids::ContentId;
use arkiv_format::index::{self, IndexReader, Info};

fn check_index(data: &[u8], version: u8) {
    let Ok(reader) = IndexReader::parse(data) else {
        return;
    };
    assert_eq!(reader.version(), version);
    let n = reader.len();
    assert_eq!(reader.is_empty(), n == 0);

    let infos: Vec<Result<Info, _>> = reader.iter().collect();
    let ids: Vec<Result<ContentId, _>> = reader.iter_ids().collect();
    assert_eq!(infos.len(), n);
    assert_eq!(ids.len(), n);
    for (i, (info, id)) in infos.iter().zip(&ids).enumerate() {
        if let (Ok(info), Ok(id)) = (info, id) {
            assert_eq!(&info.content_id, id, "iter and iter_ids disagree at {i}");
            let _ = info.timestamp();
        }
        assert_eq!(reader.id_at(i).is_ok(), id.is_ok());
    }
    assert!(reader.id_at(n).is_err());
    assert!(reader.info_at(n).is_err());

    let ok_ids: Vec<ContentId> = ids.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    let ascending = ok_ids.len() == n && ok_ids.windows(2).all(|w| w[0] < w[1]);
    for (i, info) in infos.iter().enumerate() {
        let Some(id) = ids[i].as_ref().ok() else { continue };
        match reader.get(id) {
            Ok(Some(found)) => assert_eq!(&found.content_id, id, "get returned another ID"),
            Ok(None) => assert!(!ascending, "sorted index lost entry {i} ({id})"),
            Err(_) => {}
        }
        if ascending {
            if let Ok(info) = info {
                assert_eq!(reader.get(id).ok().flatten().as_ref(), Some(info));
            }
        }
        if let Ok(it) = reader.iter_from(id) {
            for _ in it.take(2) {}
        }
    }
    // IDs that cannot be in the index.
    let _ = reader.get(&ContentId::EMPTY);
    if let Ok(probe) = "k00000000000000000000000000000000".parse::<ContentId>() {
        let _ = reader.get(&probe);
        let _ = reader.iter_from(&probe).map(|it| it.count());
    }

    // Rebuild round trip.
    let Ok(all) = infos.into_iter().collect::<Result<Vec<Info>, _>>() else {
        return;
    };
    if !ascending {
        return;
    }
    let rebuilt = match version {
        1 => index::build_v1(all.clone(), None),
        _ => index::build_v2(all.clone(), None),
    };
    if let Ok(bytes) = rebuilt {
        let again = IndexReader::parse(bytes.as_slice()).expect("a built index parses");
        let back: Vec<Info> = again
            .iter()
            .collect::<Result<_, _>>()
            .expect("a built index decodes");
        assert_eq!(back, all, "entries changed in a rebuild");
    }
}
