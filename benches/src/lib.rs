//! Benchmark support (tree generator); the benchmarks live in `benches/benches/`.
