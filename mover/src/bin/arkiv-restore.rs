//! `arkiv-restore`: standalone read-only restore (see `arkiv_mover::restore_cli`).

use clap::Parser;

fn main() {
    arkiv_mover::tune_allocator();
    arkiv_mover::init_logging();
    let cli = match arkiv_mover::restore_cli::RestoreCli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                arkiv_mover::exit::USAGE
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let rt = match arkiv_mover::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("arkiv-restore: cannot start runtime: {e}");
            std::process::exit(arkiv_mover::exit::FAILURE);
        }
    };
    let env = |k: &str| std::env::var(k).ok();
    let code = match rt.block_on(arkiv_mover::restore_cli::run(cli, &env)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("arkiv-restore: error: {}", arkiv_mover::exit::one_line(&e));
            arkiv_mover::exit::code_for(&e)
        }
    };
    std::process::exit(code);
}
