//! `cargo xtask …`: the project's command contract (see README).
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "FootballPrediction project commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// fmt check, clippy with warnings denied, and every test.
    Test,
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("==> {program} {}", args.join(" "));
    let status = std::process::Command::new(program).args(args).status()?;
    anyhow::ensure!(status.success(), "`{program} {}` failed: {status}", args.join(" "));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Test => {
            run("cargo", &["fmt", "--all", "--", "--check"])?;
            run("cargo", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
            run("cargo", &["test", "--workspace"])
        }
    }
}
