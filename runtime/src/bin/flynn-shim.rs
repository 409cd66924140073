//! `flynn-shim JOBDIR`: the per-job monitor process; see `runtime::shim`.

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: flynn-shim JOBDIR");
        std::process::exit(2);
    };
    std::process::exit(runtime::shim::run(std::path::Path::new(&dir)));
}
