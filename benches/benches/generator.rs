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
            |dir| generate_tree(&dir.path().join("tree"), &spec).expect("generate"),
        )
    });
    group.bench_function("plan_pvc_like_1.0", |b| {
        b.iter(|| plan_tree(&TreeSpec::pvc_like(1.0)).len())
    });
    group.finish();
}

criterion_group!(benches, generator);
criterion_main!(benches);
