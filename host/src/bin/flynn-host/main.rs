//! `flynn-host`: the host daemon (`flynn-host daemon`) and its command-line client.

use clap::Parser;

fn main() {
    flynn_http::service::init_logging();
    let cli = flynn_host::cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: starting the async runtime: {e}");
            std::process::exit(125);
        }
    };
    let code = match rt.block_on(flynn_host::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            125
        }
    };
    // Exit at once: a blocked read of stdin must not keep the process alive.
    std::process::exit(code);
}
