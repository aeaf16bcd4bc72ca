//! `arkiv-restore`: standalone read-only restore (see `arkiv_mover::restore_tool`).

fn main() {
    arkiv_mover::app::cli_main(
        "arkiv-restore",
        arkiv_mover::app::Workload::Read,
        arkiv_mover::restore_tool::run,
    );
}
