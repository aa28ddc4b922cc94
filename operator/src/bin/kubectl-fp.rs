//! `kubectl fp`: kubectl finds this binary on PATH by its name.
fn main() -> std::process::ExitCode {
    fp_operator::plugin::cli::main()
}
