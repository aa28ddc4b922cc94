//! Running our own kubectl (never whatever `kubectl` is on PATH) against a kubeconfig.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum KubectlError {
    #[error("cannot run kubectl: {0}")]
    Spawn(std::io::Error),
    #[error("`kubectl {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
}

#[derive(Debug, Clone)]
pub struct Kubectl {
    pub binary: PathBuf,
    pub kubeconfig: PathBuf,
    /// A context of the kubeconfig; its current context when `None`.
    pub context: Option<String>,
}

impl Kubectl {
    pub fn new(binary: &Path, kubeconfig: &Path) -> Self {
        Self {
            binary: binary.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
            context: None,
        }
    }

    /// The same kubectl pinned to `context`, so a later change of the kubeconfig's current
    /// context cannot redirect it to another cluster.
    pub fn with_context(mut self, context: &str) -> Self {
        self.context = Some(context.to_string());
        self
    }

    /// The global flags every invocation starts with.
    pub fn global_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = vec![
            "--kubeconfig".into(),
            self.kubeconfig.clone().into_os_string(),
        ];
        if let Some(context) = &self.context {
            args.extend(["--context".into(), context.into()]);
        }
        args
    }

    /// Runs kubectl with `stdin` fed to it, returning stdout.
    pub fn run_with_input(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, KubectlError> {
        let mut child = Command::new(&self.binary)
            .args(self.global_args())
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(KubectlError::Spawn)?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())
                .map_err(KubectlError::Spawn)?;
        }
        let out = child.wait_with_output().map_err(KubectlError::Spawn)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(KubectlError::Failed {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    pub fn run(&self, args: &[&str]) -> Result<String, KubectlError> {
        self.run_with_input(args, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_context_is_passed_on_every_call() {
        let plain = Kubectl::new(Path::new("/b/kubectl"), Path::new("/k/config"));
        assert_eq!(plain.global_args(), ["--kubeconfig", "/k/config"]);
        let pinned = plain.with_context("admin@prod");
        assert_eq!(
            pinned.global_args(),
            ["--kubeconfig", "/k/config", "--context", "admin@prod"]
        );
    }
}
