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
            // The causes too, each once (a wrapper may print its cause as its own message).
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let cause = s.to_string();
                if !text.contains(&cause) {
                    text = format!("{text}: {cause}");
                }
                source = s.source();
            }
            eprintln!("flynn: {text}");
            1
        }
    };
    std::process::exit(code);
}
