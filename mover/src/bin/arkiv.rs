//! The `arkiv` command-line tool.
fn main() {
    eprintln!("arkiv: not yet implemented");
    std::process::exit(1);
}
