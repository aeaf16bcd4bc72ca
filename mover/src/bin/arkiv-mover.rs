//! The VolSync Kopia mover (`/mover-kopia/entry.sh` in the image): see `arkiv_mover::run`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workload = match arkiv_mover::run::operation_hint(&args, &|k: &str| std::env::var(k).ok()) {
        Some(arkiv_mover::env::Operation::Restore) => arkiv_mover::Workload::Read,
        _ => arkiv_mover::Workload::Write,
    };
    arkiv_mover::tune_allocator(workload);
    arkiv_mover::init_logging();
    let code = arkiv_mover::run::mover_main(&args, &|k: &str| std::env::var(k).ok());
    std::process::exit(code);
}
