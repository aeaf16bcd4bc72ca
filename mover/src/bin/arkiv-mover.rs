//! The VolSync Kopia mover (`/mover-kopia/entry.sh` in the image): see `arkiv_mover::run`.

fn main() {
    arkiv_mover::tune_allocator();
    arkiv_mover::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = arkiv_mover::run::mover_main(&args, &|k: &str| std::env::var(k).ok());
    std::process::exit(code);
}
