//! The `arkiv` command-line tool (see `arkiv --help`; exit codes in `arkiv_mover::exit`).

fn main() {
    arkiv_mover::app::cli_main(
        "arkiv",
        arkiv_mover::app::cli_workload(std::env::args_os()),
        arkiv_mover::cli::run,
    );
}
