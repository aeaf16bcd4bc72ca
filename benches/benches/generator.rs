//! Generator throughput at a tiny scale (the engine benches live beside it).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use arkiv_benches::{TreeSpec, TreeStats, generate_tree, plan_tree};

fn generator(c: &mut Criterion) {
    let spec = TreeSpec::pvc_like(0.002);
    let bytes = TreeStats::of_plan(&plan_tree(&spec)).total_bytes;
    let mut group = c.benchmark_group("generator");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(10);
    group.bench_function("pvc_like_0.002", |b| {
        b.iter_with_setup(
            || tempfile::tempdir().expect("tempdir"),
            // The temp dir is returned so its removal is not timed.
            |dir| {
                generate_tree(&dir.path().join("tree"), &spec).expect("generate");
                dir
            },
        )
    });
    group.finish();
    // Planning the full-size tree (no I/O): names, sizes and seeds of 30,556 files.
    c.bench_function("generator/plan_pvc_like_1.0", |b| {
        b.iter(|| plan_tree(&TreeSpec::pvc_like(1.0)).len())
    });
}

criterion_group!(benches, generator);
criterion_main!(benches);
