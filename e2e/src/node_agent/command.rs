//! What to execute for a container, as a container runtime would: the image's entrypoint (the
//! mapped binary) and default args unless the container sets `command`/`args`.

use std::path::{Path, PathBuf};

use super::image::{BinarySpec, ImageMapping};

/// The executable and its arguments (without argv[0]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub executable: PathBuf,
    pub args: Vec<String>,
}

/// Why a container cannot run; `reason` is what goes into the container status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRunnable {
    /// No mapping and no `command`: there is nothing to run. The pod stays Waiting with the
    /// kubelet's reason for an image that cannot be pulled, so the operator meets it as it would
    /// on a real node.
    ImageNotMapped { message: String },
    /// The executable does not exist here (the runtime's `StartError`, exit code 128).
    StartError { message: String },
}

impl NotRunnable {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ImageNotMapped { .. } => "ErrImagePull",
            Self::StartError { .. } => "StartError",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::ImageNotMapped { message } | Self::StartError { message } => message,
        }
    }
}

/// Finds executables on this host.
pub trait ExecutableLookup {
    /// `name` is a path (contains `/`) or a bare command name.
    fn find(&self, name: &str) -> Option<PathBuf>;
    /// A mapped binary given by bare name.
    fn find_mapped(&self, name: &str) -> Option<PathBuf>;
}

/// `command` and `args` are already expanded and path-translated.
pub fn resolve_program(
    image: &str,
    command: Option<&[String]>,
    args: Option<&[String]>,
    mapping: Option<&ImageMapping>,
    lookup: &dyn ExecutableLookup,
) -> Result<Program, NotRunnable> {
    let command = command.filter(|c| !c.is_empty());
    match (command, mapping) {
        (None, Some(mapping)) => {
            let executable = mapped_binary(&mapping.binary, lookup, image)?;
            let args = args.map_or_else(|| mapping.args.clone(), <[String]>::to_vec);
            Ok(Program { executable, args })
        }
        (None, None) => Err(NotRunnable::ImageNotMapped {
            message: format!(
                "image {image:?} matches no entry of the node agent's image mapping and the \
                 container sets no command"
            ),
        }),
        (Some(command), mapping) => {
            let (first, rest) = command
                .split_first()
                .ok_or_else(|| NotRunnable::StartError {
                    message: "empty command".to_string(),
                })?;
            let names_mapped_binary = mapping.is_some_and(|m| {
                Path::new(first).file_name().and_then(|n| n.to_str()) == m.binary.file_name()
            });
            let executable = match mapping {
                Some(mapping) if names_mapped_binary => {
                    mapped_binary(&mapping.binary, lookup, image)?
                }
                _ => lookup.find(first).ok_or_else(|| NotRunnable::StartError {
                    message: format!(
                        "executable {first:?} of image {image:?} not found on this host"
                    ),
                })?,
            };
            let mut all_args = rest.to_vec();
            all_args.extend(args.unwrap_or_default().iter().cloned());
            Ok(Program {
                executable,
                args: all_args,
            })
        }
    }
}

fn mapped_binary(
    binary: &BinarySpec,
    lookup: &dyn ExecutableLookup,
    image: &str,
) -> Result<PathBuf, NotRunnable> {
    let found = match binary {
        BinarySpec::Path(path) => is_executable(path).then(|| path.clone()),
        BinarySpec::Name(name) => lookup.find_mapped(name),
    };
    found.ok_or_else(|| NotRunnable::StartError {
        message: format!(
            "binary {binary:?} mapped for image {image:?} not found or not executable"
        ),
    })
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Looks up executables in the agent's own directory (for mapped binaries) and on PATH.
#[derive(Debug, Clone)]
pub struct HostLookup {
    pub agent_dir: Option<PathBuf>,
    pub path_var: Option<String>,
}

impl HostLookup {
    pub fn from_environment() -> Self {
        Self {
            agent_dir: std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_path_buf)),
            path_var: std::env::var("PATH").ok(),
        }
    }

    fn on_path(&self, name: &str) -> Option<PathBuf> {
        let path_var = self.path_var.as_deref()?;
        std::env::split_paths(path_var)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    }
}

impl ExecutableLookup for HostLookup {
    fn find(&self, name: &str) -> Option<PathBuf> {
        if name.contains('/') {
            let path = PathBuf::from(name);
            return is_executable(&path).then_some(path);
        }
        self.on_path(name)
    }

    fn find_mapped(&self, name: &str) -> Option<PathBuf> {
        self.agent_dir
            .as_ref()
            .map(|dir| dir.join(name))
            .filter(|candidate| is_executable(candidate))
            .or_else(|| self.on_path(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct FakeLookup;

    impl ExecutableLookup for FakeLookup {
        fn find(&self, name: &str) -> Option<PathBuf> {
            match name {
                "pg_dump" | "/usr/bin/pg_dump" => Some(PathBuf::from("/usr/bin/pg_dump")),
                "sh" => Some(PathBuf::from("/bin/sh")),
                _ => None,
            }
        }
        fn find_mapped(&self, name: &str) -> Option<PathBuf> {
            (name == "fp-api-server").then(|| PathBuf::from("/target/debug/fp-api-server"))
        }
    }

    fn api_mapping() -> ImageMapping {
        ImageMapping {
            repository_glob: "footballprediction/fp-api-server".into(),
            tag_glob: "*".into(),
            binary: BinarySpec::Name("fp-api-server".into()),
            args: vec!["serve".into()],
            env: BTreeMap::new(),
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    const IMAGE: &str = "footballprediction/fp-api-server:1";

    #[test]
    fn mapped_image_uses_entrypoint_and_default_args() {
        let program =
            resolve_program(IMAGE, None, None, Some(&api_mapping()), &FakeLookup).unwrap();
        assert_eq!(
            program.executable,
            PathBuf::from("/target/debug/fp-api-server")
        );
        assert_eq!(program.args, strings(&["serve"]));

        let args = strings(&["migrate"]);
        let program =
            resolve_program(IMAGE, None, Some(&args), Some(&api_mapping()), &FakeLookup).unwrap();
        assert_eq!(program.args, strings(&["migrate"]));
    }

    #[test]
    fn command_naming_the_mapped_binary_runs_it() {
        let command = strings(&["/usr/local/bin/fp-api-server", "backup"]);
        let args = strings(&["--to", "/backups"]);
        let program = resolve_program(
            IMAGE,
            Some(&command),
            Some(&args),
            Some(&api_mapping()),
            &FakeLookup,
        )
        .unwrap();
        assert_eq!(
            program.executable,
            PathBuf::from("/target/debug/fp-api-server")
        );
        assert_eq!(program.args, strings(&["backup", "--to", "/backups"]));
    }

    #[test]
    fn other_commands_run_from_the_host() {
        let command = strings(&["pg_dump", "-Fc"]);
        let program =
            resolve_program("postgres:16", Some(&command), None, None, &FakeLookup).unwrap();
        assert_eq!(program.executable, PathBuf::from("/usr/bin/pg_dump"));
        assert_eq!(program.args, strings(&["-Fc"]));
        // A mapped image may still run a host tool such as a shell.
        let command = strings(&["sh", "-c", "echo hi"]);
        let program = resolve_program(
            IMAGE,
            Some(&command),
            None,
            Some(&api_mapping()),
            &FakeLookup,
        )
        .unwrap();
        assert_eq!(program.executable, PathBuf::from("/bin/sh"));
    }

    #[test]
    fn unrunnable_containers_say_why() {
        let err = resolve_program("busybox:1", None, None, None, &FakeLookup).unwrap_err();
        assert_eq!(err.reason(), "ErrImagePull");
        assert!(err.message().contains("busybox:1"));

        let command = strings(&["nonexistent-tool"]);
        let err =
            resolve_program("busybox:1", Some(&command), None, None, &FakeLookup).unwrap_err();
        assert_eq!(err.reason(), "StartError");
        assert!(err.message().contains("nonexistent-tool"));

        let mut missing = api_mapping();
        missing.binary = BinarySpec::Name("fp-operator".into());
        let err = resolve_program(IMAGE, None, None, Some(&missing), &FakeLookup).unwrap_err();
        assert_eq!(err.reason(), "StartError");
    }

    #[test]
    fn host_lookup_finds_executables_only() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        let plain = tmp.path().join("data");
        std::fs::write(&plain, "x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let lookup = HostLookup {
            agent_dir: Some(tmp.path().to_path_buf()),
            path_var: Some(tmp.path().display().to_string()),
        };
        assert_eq!(lookup.find("tool"), Some(exe.clone()));
        assert_eq!(lookup.find_mapped("tool"), Some(exe.clone()));
        assert_eq!(lookup.find(&exe.display().to_string()), Some(exe));
        assert_eq!(lookup.find("data"), None);
        assert_eq!(lookup.find("missing"), None);
    }
}
