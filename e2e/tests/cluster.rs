//! Smoke test of the local control plane: the real API server of the version we build, the
//! CRDs the platform depends on, and ServiceAccount tokens under RBAC.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;

use std::collections::BTreeSet;

use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};

/// The Kubernetes version pinned in the wrapper module that builds the control plane.
fn pinned_kubernetes_version() -> String {
    let go_mod =
        std::fs::read_to_string(common::workspace_root().join("e2e/cluster/kubernetes/go.mod"))
            .expect("e2e/cluster/kubernetes/go.mod");
    go_mod
        .lines()
        .find_map(|line| {
            let mut words = line.split_whitespace().skip_while(|w| *w == "require");
            (words.next() == Some("k8s.io/kubernetes")).then(|| words.next())?
        })
        .expect("k8s.io/kubernetes in go.mod")
        .to_string()
}

#[tokio::test]
async fn apiserver_reports_the_version_built_from_source() {
    let Some(client) = common::admin_client().await else {
        return;
    };
    let info = client.apiserver_version().await.expect("GET /version");
    assert_eq!(info.git_version, pinned_kubernetes_version());
    assert_eq!(format!("v{}.{}", info.major, info.minor), {
        let v = pinned_kubernetes_version();
        v.rsplit_once('.')
            .map(|(mm, _)| mm.to_string())
            .unwrap_or(v)
    });
}

/// `metadata.name` of every CRD in the repository's crds/ directory.
fn own_crd_names() -> Vec<String> {
    let dir = common::workspace_root().join("crds");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("crds/ directory") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("CRD file");
        for doc in text.split("\n---") {
            let value: serde_json::Value = serde_norway::from_str(doc).expect("YAML");
            if value["kind"] == "CustomResourceDefinition" {
                names.push(
                    value["metadata"]["name"]
                        .as_str()
                        .expect("name")
                        .to_string(),
                );
            }
        }
    }
    names
}

const THIRD_PARTY_CRDS: &[&str] = &[
    "certificates.cert-manager.io",
    "certificaterequests.cert-manager.io",
    "issuers.cert-manager.io",
    "clusterissuers.cert-manager.io",
    "orders.acme.cert-manager.io",
    "challenges.acme.cert-manager.io",
    "servicemonitors.monitoring.coreos.com",
    "podmonitors.monitoring.coreos.com",
    "prometheusrules.monitoring.coreos.com",
    "prometheuses.monitoring.coreos.com",
    "alertmanagers.monitoring.coreos.com",
    "alertmanagerconfigs.monitoring.coreos.com",
    "probes.monitoring.coreos.com",
    "prometheusagents.monitoring.coreos.com",
    "scrapeconfigs.monitoring.coreos.com",
    "thanosrulers.monitoring.coreos.com",
];

#[tokio::test]
async fn platform_and_third_party_crds_are_established() {
    let Some(client) = common::admin_client().await else {
        return;
    };
    let own = own_crd_names();
    assert!(
        own.iter()
            .any(|n| n == "footballpredictions.footballprediction.io"),
        "crds/ must hold the FootballPrediction CRD, found {own:?}"
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let established: BTreeSet<String> = crds
        .list(&ListParams::default())
        .await
        .expect("list CRDs")
        .items
        .into_iter()
        .filter(|crd| {
            crd.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        })
        .filter_map(|crd| crd.metadata.name)
        .collect();
    for name in own
        .iter()
        .map(String::as_str)
        .chain(THIRD_PARTY_CRDS.iter().copied())
    {
        assert!(
            established.contains(name),
            "{name} not Established; have {established:?}"
        );
    }
}

#[tokio::test]
async fn service_account_token_is_limited_by_rbac() {
    let Some(admin) = common::admin_client().await else {
        return;
    };
    let ns = common::unique_name("e2e-rbac");
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    };
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: meta(&ns),
                ..Default::default()
            },
        )
        .await
        .expect("create namespace");

    let sa_name = "config-reader";
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns);
    sas.create(
        &PostParams::default(),
        &ServiceAccount {
            metadata: meta(sa_name),
            ..Default::default()
        },
    )
    .await
    .expect("create ServiceAccount");
    let role = Role {
        metadata: meta("read-configmaps"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            verbs: vec!["get".into(), "list".into()],
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("create Role");
    let binding = RoleBinding {
        metadata: meta("config-reader"),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "read-configmaps".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: sa_name.into(),
            namespace: Some(ns.clone()),
            ..Default::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create RoleBinding");

    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = sas
        .create_token_request(sa_name, &PostParams::default(), &request)
        .await
        .expect("TokenRequest")
        .status
        .expect("token status")
        .token
        .expect("token");
    let limited = common::token_client(&token).await;

    // The token authenticates as the ServiceAccount.
    let review = Api::<SelfSubjectReview>::all(limited.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("SelfSubjectReview");
    let user = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username);
    assert_eq!(user, Some(format!("system:serviceaccount:{ns}:{sa_name}")));

    // Granted: configmaps in its namespace (the root CA bundle is published there).
    // The publisher is a controller: wait for it (a busy machine runs it late), at most
    // common::platform::TIMEOUT.
    let configmaps: Api<ConfigMap> = Api::namespaced(limited.clone(), &ns);
    common::platform::wait_for("kube-root-ca.crt readable with the token", async || {
        let names: Vec<String> = configmaps
            .list(&ListParams::default())
            .await
            .expect("list configmaps with the token")
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        let found = names.iter().any(|n| n == "kube-root-ca.crt");
        (found.then_some(()), format!("got {names:?}"))
    })
    .await;

    // Refused: secrets in the same namespace, and configmaps elsewhere.
    let secrets = Api::<Secret>::namespaced(limited.clone(), &ns)
        .list(&ListParams::default())
        .await;
    assert!(
        matches!(secrets, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{secrets:?}"
    );
    let elsewhere = Api::<ConfigMap>::namespaced(limited, "default")
        .list(&ListParams::default())
        .await;
    assert!(
        matches!(elsewhere, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{elsewhere:?}"
    );

    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
}
