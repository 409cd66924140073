//! `flynn`: the command-line client of a cluster's controller.

use clap::Parser;

fn main() {
    let cli = flynn_cli::cli::Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = match rt.block_on(flynn_cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flynn: {e}");
            1
        }
    };
    std::process::exit(code);
}
