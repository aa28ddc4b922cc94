//! Prints the FootballPrediction CRD as YAML (`crds/footballprediction.yaml`), or with
//! `--reference` the Markdown reference (`docs/crd-reference.md`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => match fp_operator::crd::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("crdgen: {e}");
                ExitCode::FAILURE
            }
        },
        ["--reference"] => {
            print!("{}", fp_operator::crd::render_reference());
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "usage: crdgen [--reference]\n  prints the CRD YAML, or the Markdown reference"
            );
            ExitCode::from(2)
        }
    }
}
