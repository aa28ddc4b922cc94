//! `cargo xtask schemathesis`: the running API attacked through its own OpenAPI document by
//! schemathesis (from PyPI, pinned, installed once into a virtualenv in the cache), once per role
//! (anonymous, viewer, analyst, admin). Every schemathesis check runs (no 5xx; every status,
//! header and body as documented; what the document allows is accepted and what it forbids is
//! refused; authentication not ignored) plus `fp_roles.role_boundary`: no role gets a 2xx from an
//! operation that needs a higher one (xtask/schemathesis/).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;

use crate::{bench, paths, steps};

/// The schemathesis release installed and run.
const VERSION: &str = "4.32.5";

/// The admin password of the throwaway server.
const PASSWORD: &str = "schemathesis-admin-pw";

pub struct Options {
    /// Hypothesis seed: the same seed generates the same requests.
    pub seed: u64,
    /// Examples per operation and phase.
    pub max_examples: u32,
}

impl Options {
    /// What `cargo xtask test` runs: a fixed seed, so a failure is reproducible.
    pub fn ci() -> Self {
        Self {
            seed: 1,
            max_examples: 40,
        }
    }
}

/// `<cache>/tools/schemathesis-<version>`: a virtualenv; `installed` is written last, so an
/// interrupted install is redone rather than half used.
fn venv_dir() -> PathBuf {
    paths::cache_dir()
        .join("tools")
        .join(format!("schemathesis-{VERSION}"))
}

fn ensure_installed() -> anyhow::Result<PathBuf> {
    let venv = venv_dir();
    let program = venv.join("bin").join("schemathesis");
    if venv.join("installed").is_file() && program.is_file() {
        return Ok(program);
    }
    eprintln!(
        "[schemathesis] installing schemathesis {VERSION} into {} (first run only)",
        venv.display()
    );
    let _ = std::fs::remove_dir_all(&venv);
    std::fs::create_dir_all(venv.parent().context("cache path has no parent")?)?;
    steps::run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    steps::run(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("schemathesis=={VERSION}")),
    )?;
    anyhow::ensure!(
        program.is_file(),
        "{} missing after install",
        program.display()
    );
    std::fs::write(venv.join("installed"), VERSION)?;
    Ok(program)
}

/// One role's configuration: the shared one, with the role's token as a header. A file rather
/// than `-H`, so the token is not in the command line the step prints (pure).
pub fn role_config(shared: &str, token: Option<&str>) -> String {
    match token {
        Some(token) => format!("headers = {{ Authorization = \"Bearer {token}\" }}\n{shared}"),
        None => shared.to_owned(),
    }
}

/// The arguments of one role's run (pure).
pub fn run_args(config: &Path, url: &str, options: &Options) -> Vec<String> {
    vec![
        "--no-color".to_owned(),
        "--config-file".to_owned(),
        config.display().to_string(),
        "run".to_owned(),
        format!("{url}/api-docs/openapi.json"),
        "--seed".to_owned(),
        options.seed.to_string(),
        "--max-examples".to_owned(),
        options.max_examples.to_string(),
        "--workers".to_owned(),
        "1".to_owned(),
    ]
}

fn send_json(url: &str, token: Option<&str>, method: &str, body: &str) -> anyhow::Result<String> {
    let auth = token.map(|t| format!("authorization: Bearer {t}"));
    let mut args = vec![
        "-X",
        method,
        "-H",
        "content-type: application/json",
        "-d",
        body,
    ];
    if let Some(auth) = &auth {
        args.extend(["-H", auth.as_str()]);
    }
    args.push(url);
    bench::curl(&args)
}

fn field(body: &str, name: &str) -> anyhow::Result<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_str(body)?;
    Ok(value[name].clone())
}

/// Logs `username` in and returns its access token.
fn login(url: &str, username: &str, password: &str) -> anyhow::Result<String> {
    let body = serde_json::json!({"username": username, "password": password}).to_string();
    let answer = send_json(&format!("{url}/api/v1/auth/login"), None, "POST", &body)?;
    field(&answer, "access_token")?
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("login of {username} answered {answer}"))
}

/// A token for every role: the admin exists; a viewer registers; an analyst registers and is
/// promoted by the admin (which ends its first session, so it logs in again).
fn tokens(url: &str) -> anyhow::Result<Vec<(&'static str, Option<String>)>> {
    let admin = login(url, "admin", PASSWORD)?;
    let password = "schemathesis-user-pw";
    let mut ids = Vec::new();
    for name in ["st-viewer", "st-analyst"] {
        let body = serde_json::json!({"username": name, "password": password}).to_string();
        let answer = send_json(&format!("{url}/api/v1/auth/register"), None, "POST", &body)?;
        ids.push(
            field(&answer, "user")?["id"]
                .as_i64()
                .context("no user id")?,
        );
    }
    send_json(
        &format!("{url}/api/v1/admin/users/{}", ids[1]),
        Some(&admin),
        "PATCH",
        r#"{"role": "analyst"}"#,
    )?;
    Ok(vec![
        ("anonymous", None),
        ("viewer", Some(login(url, "st-viewer", password)?)),
        ("analyst", Some(login(url, "st-analyst", password)?)),
        ("admin", Some(admin)),
    ])
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let program = ensure_installed()?;
    let bins = bench::binaries(true)?;
    let api = bench::binary(&bins, "fp-api-server")?;
    let scratch = bench::scratch_dir("schemathesis")?;
    let mut server = bench::start_api(&api, None, &scratch, PASSWORD)?;
    bench::wait_ready(&mut server, "fp-api-server")?;
    let hooks = paths::workspace_root().join("xtask").join("schemathesis");
    let shared = std::fs::read_to_string(hooks.join("schemathesis.toml"))?;
    let mut failed = Vec::new();
    for (role, token) in tokens(&server.url)? {
        let t = Instant::now();
        eprintln!(
            "[schemathesis] as {role}: seed {}, {} examples per operation",
            options.seed, options.max_examples
        );
        let config = scratch.join(format!("{role}.toml"));
        std::fs::write(&config, role_config(&shared, token.as_deref()))?;
        let mut cmd = Command::new(&program);
        cmd.args(run_args(&config, &server.url, options))
            .env("SCHEMATHESIS_HOOKS", "fp_roles")
            .env("PYTHONPATH", &hooks)
            // No __pycache__ in the source tree.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("FP_SCHEMATHESIS_ROLE", role)
            .current_dir(&scratch);
        match steps::run(&mut cmd) {
            Ok(_) => eprintln!("[schemathesis] as {role}: passed in {:?}", t.elapsed()),
            Err(e) => {
                eprintln!("[schemathesis] as {role}: FAILED: {e}");
                failed.push(role);
            }
        }
    }
    drop(server);
    anyhow::ensure!(
        failed.is_empty(),
        "schemathesis found failures as {} (rerun: cargo xtask schemathesis --seed {}; the server's log is {})",
        failed.join(", "),
        options.seed,
        scratch.join("api.log").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_run_is_seeded_and_authenticated_as_that_role_without_a_token_on_the_command_line() {
        let options = Options {
            seed: 7,
            max_examples: 5,
        };
        let args = run_args(Path::new("/c.toml"), "http://127.0.0.1:1", &options);
        assert_eq!(
            args.join(" "),
            "--no-color --config-file /c.toml run http://127.0.0.1:1/api-docs/openapi.json \
             --seed 7 --max-examples 5 --workers 1"
        );
        let shared = "[checks]\nenabled = true\n";
        assert_eq!(role_config(shared, None), shared);
        let admin = role_config(shared, Some("T"));
        assert_eq!(
            admin,
            "headers = { Authorization = \"Bearer T\" }\n[checks]\nenabled = true\n"
        );
    }
}
