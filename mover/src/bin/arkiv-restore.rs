//! `arkiv-restore`: standalone read-only restore (see `arkiv_mover::restore_cli`).

fn main() {
    arkiv_mover::cli_main(
        "arkiv-restore",
        arkiv_mover::Workload::Read,
        arkiv_mover::restore_cli::run,
    );
}
