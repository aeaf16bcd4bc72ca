//! Codec throughput (`arkiv-format`): splitter, content hashing, compress+encrypt per zstd
//! level, compress and decompress per kopia compressor, and index lookups. Pure CPU, no I/O.

#![expect(clippy::unwrap_used, reason = "benchmark setup")]

use std::hint::black_box;

use arkiv_benches::{Content, write_content};
use arkiv_format::compression::{self, CompressionAlgorithm};
use arkiv_format::encryption::{ContentCipher, EncryptionAlgorithm};
use arkiv_format::hashing::{HashAlgorithm, Hasher};
use arkiv_format::ids::{BlobId, ContentId};
use arkiv_format::index::{IndexReader, Info, build_v2};
use arkiv_format::splitter::{Splitter, SplitterKind};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const MIB: usize = 1 << 20;

/// Deterministic bytes of one generator content type.
fn sample(content: Content, seed: u64, size: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(size);
    write_content(&mut v, content, seed, size as u64).unwrap();
    v.truncate(size);
    v
}

/// A realistic mix: half SQLite-like pages, a quarter logs, a quarter YAML.
fn mixed(size: usize) -> Vec<u8> {
    let mut v = sample(Content::Database, 1, size / 2);
    v.extend(sample(Content::Log, 2, size / 4));
    v.extend(sample(Content::Yaml, 3, size - v.len()));
    v
}

fn splitter(c: &mut Criterion) {
    let data = sample(Content::Media, 7, 64 * MIB);
    let mut g = c.benchmark_group("splitter");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    for name in ["DYNAMIC-4M-BUZHASH", "FIXED-4M", "DYNAMIC-1M-BUZHASH"] {
        let kind: SplitterKind = name.parse().unwrap();
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let mut s = Splitter::new(kind);
                black_box(s.chunk_lengths(black_box(&data)).len())
            })
        });
    }
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let data = sample(Content::Media, 8, 4 * MIB);
    let secret = [0x5au8; 32];
    let mut g = c.benchmark_group("hash");
    for alg in [
        HashAlgorithm::Blake2b256_128,
        HashAlgorithm::Blake3_256_128,
        HashAlgorithm::HmacSha256_128,
    ] {
        let h = Hasher::new(alg, &secret).unwrap();
        for size in [4 << 10, 64 << 10, 1 << 20, 4 << 20] {
            let chunk = &data[..size];
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_with_input(
                BenchmarkId::new(alg.name(), format!("{}KiB", size >> 10)),
                chunk,
                |b, chunk| b.iter(|| black_box(h.content_id(None, black_box(chunk)).unwrap())),
            );
        }
    }
    g.finish();
}

fn compress_encrypt(c: &mut Criterion) {
    let cipher = ContentCipher::new(EncryptionAlgorithm::Aes256GcmHmacSha256, &[7u8; 32]).unwrap();
    let iv = [3u8; 16];
    let mut algs: Vec<Option<CompressionAlgorithm>> = vec![None];
    algs.extend(
        [
            "zstd-fastest",
            "zstd",
            "zstd-better-compression",
            "zstd-best-compression",
        ]
        .map(CompressionAlgorithm::from_name),
    );
    // 4 MiB: a typical data chunk; 8 KiB: a typical small config file (per-call overhead).
    for (label, data) in [
        ("4MiB", mixed(4 * MIB)),
        ("8KiB", sample(Content::Yaml, 4, 8 << 10)),
    ] {
        let mut g = c.benchmark_group(format!("compress_encrypt_{label}"));
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.sample_size(10);
        for alg in &algs {
            let alg = *alg;
            let name = alg.map_or("none", |a| a.name());
            g.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    let stored = match alg {
                        Some(a) => compression::compress(a, black_box(&data)).unwrap(),
                        None => data.clone(),
                    };
                    black_box(cipher.encrypt(&iv, &stored, [1u8; 12]).unwrap().len())
                })
            });
            if let Some(a) = alg {
                let out = compression::compress(a, &data).unwrap();
                eprintln!(
                    "compress_encrypt_{label}/{name}: ratio {:.2}x",
                    data.len() as f64 / out.len() as f64
                );
            }
        }
        g.finish();
    }
}

/// Every kopia compressor on the mixed 4 MiB chunk: `codec_compress_4MiB/<name>` and
/// `codec_decompress_4MiB/<name>` (zstd-fastest is the row to compare with). lz4 is read only:
/// its input is an LZ4 frame made by `lz4_flex`, as kopia 0.20–0.22 stored them.
fn codecs(c: &mut Criterion) {
    let data = mixed(4 * MIB);
    let stored: Vec<(CompressionAlgorithm, Vec<u8>)> = CompressionAlgorithm::all()
        .map(|a| {
            let s = if a.is_supported() {
                compression::compress(a, &data).unwrap()
            } else {
                let mut enc =
                    lz4_flex::frame::FrameEncoder::new(a.header_id().to_be_bytes().to_vec());
                std::io::Write::write_all(&mut enc, &data).unwrap();
                enc.finish().unwrap()
            };
            eprintln!(
                "codec_4MiB/{}: ratio {:.2}x",
                a.name(),
                data.len() as f64 / s.len() as f64
            );
            (a, s)
        })
        .collect();
    let mut g = c.benchmark_group("codec_compress_4MiB");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    for (a, _) in stored.iter().filter(|(a, _)| a.is_supported()) {
        g.bench_function(BenchmarkId::from_parameter(a.name()), |b| {
            b.iter(|| black_box(compression::compress(*a, black_box(&data)).unwrap().len()))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("codec_decompress_4MiB");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    for (a, s) in &stored {
        g.bench_function(BenchmarkId::from_parameter(a.name()), |b| {
            b.iter(|| {
                let out = compression::decompress(black_box(s), Some(a.header_id()), data.len());
                black_box(out.unwrap().len())
            })
        });
    }
    g.finish();
}

fn content_id(i: u64) -> ContentId {
    let mut h = [0u8; 16];
    // SplitMix64-style spread so IDs are uniformly distributed
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for chunk in h.chunks_mut(8) {
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    ContentId::from_hash(None, &h).unwrap()
}

fn info(i: u64, pack: u64) -> Info {
    Info {
        content_id: content_id(i),
        pack_blob_id: BlobId::new(format!("p{pack:032x}-s0123456789abcdef1f")),
        pack_offset: (i % 5000) as u32 * 4096,
        packed_length: 4096,
        original_length: 4096,
        timestamp_seconds: 1_700_000_000,
        deleted: false,
        format_version: 2,
        compression_header_id: 0x1101,
        encryption_key_id: 0,
    }
}

fn index_lookup(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let bytes = build_v2((0..N).map(|i| info(i, i / 5000)), None).unwrap();
    let reader = IndexReader::parse(bytes).unwrap();
    let hits: Vec<ContentId> = (0..1000).map(|i| content_id(i * 997 % N)).collect();
    let misses: Vec<ContentId> = (0..1000).map(|i| content_id(N + i)).collect();
    let mut g = c.benchmark_group("index_1M");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("hit", |b| {
        b.iter(|| {
            for id in &hits {
                black_box(reader.get(id).unwrap());
            }
        })
    });
    g.bench_function("miss", |b| {
        b.iter(|| {
            for id in &misses {
                black_box(reader.get(id).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = splitter, hashing, compress_encrypt, codecs, index_lookup
}
criterion_main!(benches);
