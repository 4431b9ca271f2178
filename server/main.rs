use clap::Parser;

fn main() {
    noctune::util::logging::init();
    let cli = noctune::cli::Cli::parse();
    match noctune::cli::dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}
