//! `flynn-shim JOBDIR RUNDIR`, or `flynn-shim --standby`: the per-job monitor process; see
//! `runtime::shim`.

fn main() {
    let mut args = std::env::args_os().skip(1);
    let code = match (args.next(), args.next()) {
        (Some(flag), None) if flag == "--standby" => runtime::shim::standby(),
        (Some(disk), Some(run)) => runtime::shim::run(&runtime::job::JobDir::new(disk, run)),
        _ => {
            eprintln!("usage: flynn-shim JOBDIR RUNDIR | flynn-shim --standby");
            2
        }
    };
    std::process::exit(code);
}
