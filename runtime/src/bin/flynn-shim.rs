//! `flynn-shim JOBDIR RUNDIR`: the per-job monitor process; see `runtime::shim`.

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(disk), Some(run)) = (args.next(), args.next()) else {
        eprintln!("usage: flynn-shim JOBDIR RUNDIR");
        std::process::exit(2);
    };
    let dir = runtime::job::JobDir::new(disk, run);
    std::process::exit(runtime::shim::run(&dir));
}
