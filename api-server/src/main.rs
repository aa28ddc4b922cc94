//! `fp-api-server`: see `fp-api-server --help`; the logic lives in the library.

fn main() -> std::process::ExitCode {
    fp_api_server::cli::main()
}
