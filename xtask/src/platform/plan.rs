//! The decisions of `cargo xtask up` / `down`, pure: which cluster a kubeconfig names, whether
//! it has a node to run the pods, what would clash with objects already in an existing cluster, what
//! `up` records as created, and what `down` removes in which order.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{BACKUP_VOLUME, INSTANCE, NAMESPACE, OPERATOR_NAMESPACE, OPERATOR_RELEASE};

/// The cluster of a kubeconfig's current context, as `up` found it. `down` uses the same
/// context and checks the server is still the same before it deletes anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterTarget {
    pub kubeconfig: PathBuf,
    pub context: String,
    pub server: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("kubeconfig {path}: `kubectl config view` printed no usable JSON: {reason}")]
    Output { path: String, reason: String },
    #[error("kubeconfig {path} has no current context; pick one with `kubectl config use-context`")]
    NoContext { path: String },
    #[error("kubeconfig {path}: context {context:?} names no cluster with a server URL")]
    NoServer { path: String, context: String },
}

/// Reads the output of `kubectl config view --minify -o json` (only the current context, its
/// cluster and user).
pub fn parse_minified(kubeconfig: &Path, json: &str) -> Result<ClusterTarget, TargetError> {
    let path = kubeconfig.display().to_string();
    let config: serde_json::Value =
        serde_json::from_str(json).map_err(|e| TargetError::Output {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let context = config["current-context"]
        .as_str()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| TargetError::NoContext { path: path.clone() })?;
    let no_server = || TargetError::NoServer {
        path: path.clone(),
        context: context.to_string(),
    };
    let named = |list: &str, name: &str| {
        config[list]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["name"] == name).cloned())
    };
    let cluster = named("contexts", context)
        .and_then(|c| c["context"]["cluster"].as_str().map(str::to_string))
        .ok_or_else(no_server)?;
    let server = named("clusters", &cluster)
        .and_then(|c| c["cluster"]["server"].as_str().map(str::to_string))
        .filter(|s| !s.is_empty())
        .ok_or_else(no_server)?;
    Ok(ClusterTarget {
        kubeconfig: kubeconfig.to_path_buf(),
        context: context.to_string(),
        server,
    })
}

/// An existing cluster runs the pods on its own nodes: without a Ready one, no pod would start.
pub fn require_ready_nodes(ready_nodes: &[String], server: &str) -> Result<(), String> {
    if ready_nodes.is_empty() {
        return Err(format!(
            "the cluster at {server} has no Ready node, so no pod would start; add a node to it \
             or use the local cluster with its real node (`cargo xtask up` without --kubeconfig)"
        ));
    }
    Ok(())
}

/// What of the platform's objects an existing cluster already has, observed before `up`
/// installs anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    /// Which of the namespaces `up` uses exist.
    pub namespaces: Vec<String>,
    pub operator_release: bool,
    pub sample: bool,
    pub database_secret: bool,
    pub backup_volume: bool,
    /// `namespace/name` of Deployments labelled as an fp-operator.
    pub operators: Vec<String>,
}

/// Objects `up` would overwrite or fight with; each is a sentence for the error message.
pub fn conflicts(existing: &Existing) -> Vec<String> {
    let mut found = Vec::new();
    if existing.operator_release {
        found.push(format!(
            "Helm release {OPERATOR_RELEASE} in namespace {OPERATOR_NAMESPACE}"
        ));
    }
    for operator in &existing.operators {
        found.push(format!(
            "fp-operator Deployment {operator} (two operators would fight over every FootballPrediction)"
        ));
    }
    if existing.sample {
        found.push(format!("FootballPrediction {NAMESPACE}/{INSTANCE}"));
    }
    if existing.database_secret {
        found.push(format!("Secret {NAMESPACE}/{INSTANCE}-database"));
    }
    if existing.backup_volume {
        found.push(format!("PersistentVolume {BACKUP_VOLUME}"));
    }
    found
}

/// What `up` created in a cluster: exactly what `down` deletes there. CRDs are listed but left
/// in place (as Helm leaves them): deleting a CRD deletes every object of its kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    pub namespaces: Vec<String>,
    pub operator_release: bool,
    pub sample: bool,
    pub database_secret: bool,
    pub backup_volume: bool,
    pub crds: Vec<String>,
}

impl Created {
    /// Recorded before `up` creates anything, so a run that fails half-way is still removed
    /// whole (every deletion tolerates objects that never came to be).
    pub fn planned(existing: &Existing) -> Self {
        Self {
            namespaces: [NAMESPACE, OPERATOR_NAMESPACE]
                .into_iter()
                .filter(|ns| !existing.namespaces.iter().any(|e| e == ns))
                .map(str::to_string)
                .collect(),
            operator_release: true,
            sample: true,
            database_secret: true,
            backup_volume: true,
            crds: Vec::new(),
        }
    }

    /// Everything a plain `up` puts into the control plane it started.
    pub fn local_platform() -> Self {
        Self::planned(&Existing::default())
    }
}

/// One step of `down` in an existing cluster, in the order they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    DeleteSample,
    DeleteDatabaseSecret,
    DeleteNamespace(String),
    UninstallOperator,
    DeleteBackupVolume,
    StopPostgres,
}

impl Step {
    /// Steps that talk to the cluster (skipped when it is gone); the other stops our process.
    pub fn in_cluster(&self) -> bool {
        !matches!(self, Step::StopPostgres)
    }
}

/// The sample goes first while the operator still runs; PostgreSQL stops last, after every pod
/// that used it.
pub fn teardown_steps(created: &Created) -> Vec<Step> {
    let ours = |ns: &str| created.namespaces.iter().any(|n| n == ns);
    let mut steps = Vec::new();
    if created.sample {
        steps.push(Step::DeleteSample);
    }
    if ours(NAMESPACE) {
        steps.push(Step::DeleteNamespace(NAMESPACE.into()));
    } else if created.database_secret {
        steps.push(Step::DeleteDatabaseSecret);
    }
    if created.operator_release {
        steps.push(Step::UninstallOperator);
    }
    if ours(OPERATOR_NAMESPACE) {
        steps.push(Step::DeleteNamespace(OPERATOR_NAMESPACE.into()));
    }
    if created.backup_volume {
        steps.push(Step::DeleteBackupVolume);
    }
    steps.push(Step::StopPostgres);
    steps
}

/// Where the platform of a run lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cluster", rename_all = "snake_case")]
pub enum Target {
    /// The control plane `up` started itself (`cargo xtask cluster up`'s state).
    Local,
    /// A cluster `up` was given with `--kubeconfig`; never stopped by `down`.
    Existing(ClusterTarget),
}

/// The state file of a run (`<state>/platform/up.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub target: Target,
    #[serde(default)]
    pub created: Created,
}

/// What a new `up` does about the run recorded before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Previous {
    /// Nothing recorded, or a local run that the new local run replaces (starting the control
    /// plane and PostgreSQL stops their predecessors).
    Nothing,
    /// A local run; the new run goes elsewhere: stop that control plane and PostgreSQL.
    StopLocal,
    /// A local run whose control plane the new run was given with `--kubeconfig`: remove the
    /// platform from it but keep it running.
    RemovePlatformKeepCluster,
    /// A run in an existing cluster: remove what it created there.
    Teardown(ClusterTarget, Created),
}

/// `next` is `None` for a local run; `local_kubeconfig` is the admin kubeconfig of the local
/// control plane (paths compared as given: the caller canonicalises them).
pub fn previous_run(
    previous: Option<&Record>,
    next: Option<&ClusterTarget>,
    local_kubeconfig: &Path,
) -> Previous {
    match (previous.map(|r| &r.target), next) {
        (None, _) | (Some(Target::Local), None) => Previous::Nothing,
        (Some(Target::Local), Some(next)) if next.kubeconfig == local_kubeconfig => {
            Previous::RemovePlatformKeepCluster
        }
        (Some(Target::Local), Some(_)) => Previous::StopLocal,
        (Some(Target::Existing(target)), _) => Previous::Teardown(
            target.clone(),
            previous.map(|r| r.created.clone()).unwrap_or_default(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIFIED: &str = r#"{
        "kind": "Config",
        "current-context": "fp-admin@fp-local",
        "contexts": [{"name": "fp-admin@fp-local", "context": {"cluster": "fp-local", "user": "fp-admin"}}],
        "clusters": [{"name": "fp-local", "cluster": {"server": "https://127.0.0.1:39829", "certificate-authority-data": "DATA+OMITTED"}}],
        "users": [{"name": "fp-admin", "user": {}}]
    }"#;

    fn target(server: &str) -> ClusterTarget {
        ClusterTarget {
            kubeconfig: PathBuf::from("/k/config"),
            context: "ctx".into(),
            server: server.into(),
        }
    }

    #[test]
    fn reads_context_and_server_of_a_minified_kubeconfig() {
        let t = parse_minified(Path::new("/k/config"), MINIFIED).unwrap();
        assert_eq!(t.context, "fp-admin@fp-local");
        assert_eq!(t.server, "https://127.0.0.1:39829");
        assert_eq!(t.kubeconfig, PathBuf::from("/k/config"));
    }

    #[test]
    fn kubeconfigs_without_context_or_server_are_named_in_the_error() {
        let p = Path::new("/k/config");
        let no_context = parse_minified(p, r#"{"current-context": "", "contexts": []}"#);
        assert_eq!(
            no_context,
            Err(TargetError::NoContext {
                path: "/k/config".into()
            })
        );
        let no_server = MINIFIED.replace(r#""server": "https://127.0.0.1:39829", "#, "");
        let err = parse_minified(p, &no_server).unwrap_err();
        assert!(err.to_string().contains("/k/config"), "{err}");
        assert!(err.to_string().contains("fp-admin@fp-local"), "{err}");
        assert!(matches!(
            parse_minified(p, "error: not json"),
            Err(TargetError::Output { .. })
        ));
    }

    #[test]
    fn a_cluster_without_a_ready_node_is_refused_with_what_to_do() {
        assert_eq!(
            require_ready_nodes(&["n1".into()], "https://10.1.2.3:6443"),
            Ok(())
        );
        let none = require_ready_nodes(&[], "https://10.1.2.3:6443").unwrap_err();
        assert!(none.contains("https://10.1.2.3:6443") && none.contains("no Ready node"));
        assert!(none.contains("without --kubeconfig"), "{none}");
    }

    #[test]
    fn an_empty_cluster_has_no_conflicts_and_every_clash_is_listed() {
        let empty = Existing {
            namespaces: vec!["football".into()],
            ..Existing::default()
        };
        assert!(conflicts(&empty).is_empty());
        let all = Existing {
            namespaces: vec![],
            operator_release: true,
            sample: true,
            database_secret: true,
            backup_volume: true,
            operators: vec!["ops/fp-operator".into()],
        };
        let found = conflicts(&all);
        assert_eq!(found.len(), 5, "{found:?}");
        assert!(found.iter().any(|c| c.contains("ops/fp-operator")));
        assert!(found.iter().any(|c| c.contains("football/demo-database")));
    }

    #[test]
    fn down_removes_only_namespaces_up_created() {
        let existing = Existing {
            namespaces: vec!["football".into()],
            ..Existing::default()
        };
        let created = Created::planned(&existing);
        assert_eq!(created.namespaces, ["fp-system"]);
        let steps = teardown_steps(&created);
        assert_eq!(
            steps,
            [
                Step::DeleteSample,
                Step::DeleteDatabaseSecret,
                Step::UninstallOperator,
                Step::DeleteNamespace("fp-system".into()),
                Step::DeleteBackupVolume,
                Step::StopPostgres,
            ]
        );
    }

    #[test]
    fn down_deletes_the_sample_before_the_operator_and_stops_postgres_last() {
        let steps = teardown_steps(&Created::planned(&Existing::default()));
        let at = |s: &Step| steps.iter().position(|x| x == s).unwrap();
        let football = Step::DeleteNamespace("football".into());
        assert!(at(&Step::DeleteSample) < at(&football));
        assert!(at(&football) < at(&Step::UninstallOperator));
        assert_eq!(steps.last(), Some(&Step::StopPostgres));
        // The namespace takes the Secret with it.
        assert!(!steps.contains(&Step::DeleteDatabaseSecret));
        assert_eq!(
            steps.iter().filter(|s| !s.in_cluster()).count(),
            1,
            "only PostgreSQL is a process"
        );
    }

    #[test]
    fn nothing_recorded_means_nothing_to_remove() {
        assert_eq!(teardown_steps(&Created::default()), [Step::StopPostgres]);
    }

    #[test]
    fn the_previous_run_is_cleaned_according_to_where_the_next_goes() {
        let local_kc = Path::new("/w/target/fp-state/cluster/kubeconfig");
        let local = Record {
            target: Target::Local,
            created: Created::default(),
        };
        let elsewhere = target("https://127.0.0.1:1");
        let into_local = ClusterTarget {
            kubeconfig: local_kc.to_path_buf(),
            ..elsewhere.clone()
        };
        assert_eq!(
            previous_run(None, Some(&elsewhere), local_kc),
            Previous::Nothing
        );
        assert_eq!(
            previous_run(Some(&local), None, local_kc),
            Previous::Nothing
        );
        assert_eq!(
            previous_run(Some(&local), Some(&elsewhere), local_kc),
            Previous::StopLocal
        );
        assert_eq!(
            previous_run(Some(&local), Some(&into_local), local_kc),
            Previous::RemovePlatformKeepCluster
        );
        let existing = Record {
            target: Target::Existing(elsewhere.clone()),
            created: Created::local_platform(),
        };
        for next in [None, Some(&elsewhere)] {
            assert_eq!(
                previous_run(Some(&existing), next, local_kc),
                Previous::Teardown(elsewhere.clone(), Created::local_platform())
            );
        }
    }

    #[test]
    fn records_round_trip_and_name_their_cluster_kind() {
        let record = Record {
            target: Target::Existing(target("https://127.0.0.1:1")),
            created: Created::planned(&Existing::default()),
        };
        let text = serde_json::to_string(&record).unwrap();
        assert!(text.contains(r#""cluster":"existing""#), "{text}");
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), record);
        let local: Record = serde_json::from_str(r#"{"target":{"cluster":"local"}}"#).unwrap();
        assert_eq!(local.target, Target::Local);
        assert_eq!(local.created, Created::default());
    }
}
