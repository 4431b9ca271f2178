//! `noctune`: the binary. All of it is in `noctune-cli`; see docs/architecture.md.

fn main() {
    std::process::exit(noctune_cli::main());
}
