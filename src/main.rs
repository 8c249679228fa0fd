//! `fastway`: the gateway command, a drop-in replacement for the Go binary.

use std::process::ExitCode;

const USAGE: &str = "\
usage: fastway [flags]

uniway's fastway gateway. The command line of CLI.md is not wired yet:
this build only answers -help.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args
        .iter()
        .any(|a| matches!(a.as_str(), "-h" | "-help" | "--help" | "--h"))
    {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    eprintln!("fastway: the gateway is not wired into this command yet (see -help)");
    ExitCode::from(2)
}
