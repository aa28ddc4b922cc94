//! Server-side apply of the built children (field manager `fp-operator`, force), deletion of children
//! no longer built, and the comparison that keeps a steady state from writing at all.
//!
//! Every child carries an annotation with a hash of what was built. A child is applied only when it
//! is missing, its hash differs (the spec changed), or the live object no longer contains what was
//! built (someone edited or removed a field we own). Objects the API server normalises (e.g.
//! quantities) would always look edited, so after an apply the operator remembers the
//! resourceVersion it produced and treats that exact version as up to date.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PropagationPolicy,
};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::crd::{FIELD_MANAGER, annotations};
use crate::metrics::{ApplyResult, Metrics};
use crate::resources::common::{instance_selector, short_hash};
use crate::resources::{Child, Kind};

/// Where one child lives.
pub type ChildKey = (Kind, String);

/// (kind, namespace, name) of a child.
type MemoKey = (Kind, String, String);
/// (built hash, resourceVersion the apply produced).
type Written = (String, String);

/// resourceVersions this operator produced, per child and built hash.
#[derive(Debug, Default)]
pub struct Memo {
    applied: Mutex<HashMap<MemoKey, Written>>,
}

impl Memo {
    fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<(String, String)> {
        let map = self.applied.lock().ok()?;
        map.get(&(kind, namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    fn put(&self, kind: Kind, namespace: &str, name: &str, hash: String, resource_version: String) {
        if let Ok(mut map) = self.applied.lock() {
            map.insert(
                (kind, namespace.to_owned(), name.to_owned()),
                (hash, resource_version),
            );
        }
    }

    fn forget(&self, kind: Kind, namespace: &str, name: &str) {
        if let Ok(mut map) = self.applied.lock() {
            map.remove(&(kind, namespace.to_owned(), name.to_owned()));
        }
    }
}

/// Hashes the built object and records the hash in its annotations; returns the hash.
pub fn stamp(object: &mut Value) -> String {
    let hash = short_hash(serde_json::to_string(object).unwrap_or_default().as_bytes());
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Some(map) = annotations.as_object_mut() {
            map.insert(
                annotations::SPEC_HASH.to_owned(),
                Value::String(hash.clone()),
            );
        }
    }
    hash
}

/// Whether everything in `desired` is present with the same value in `live`. Empty maps, lists and
/// nulls in `desired` match absent fields (the API server drops them).
pub fn is_subset(desired: &Value, live: Option<&Value>) -> bool {
    match (desired, live) {
        (Value::Null, _) => true,
        (d, None) => is_empty(d),
        (Value::Object(d), Some(Value::Object(l))) => d.iter().all(|(k, v)| is_subset(v, l.get(k))),
        (Value::Array(d), Some(Value::Array(l))) => {
            d.len() == l.len() && d.iter().zip(l).all(|(dv, lv)| is_subset(dv, Some(lv)))
        }
        (Value::Number(d), Some(Value::Number(l))) => d.as_f64() == l.as_f64(),
        (d, Some(l)) => d == l,
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.values().all(is_empty),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

/// Whether a built child must be applied, given the live object and what this process last wrote.
pub fn needs_apply(
    desired: &Value,
    hash: &str,
    live: Option<&Value>,
    remembered: Option<&(String, String)>,
) -> bool {
    let Some(live) = live else {
        return true;
    };
    let live_hash = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(annotations::SPEC_HASH))
        .and_then(Value::as_str);
    if live_hash != Some(hash) {
        return true;
    }
    let live_version = live
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    if let (Some((h, rv)), Some(live_version)) = (remembered, live_version)
        && h == hash
        && rv == live_version
    {
        return false;
    }
    // Type meta is not part of listed items; the rest must match.
    let mut body = desired.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
    }
    !is_subset(&body, Some(live))
}

/// Live children that are controlled by this owner but no longer built.
pub fn orphans<'a>(
    desired: &[Child],
    live: &'a BTreeMap<Kind, Vec<DynamicObject>>,
    owner_uid: &str,
) -> Vec<(Kind, &'a DynamicObject)> {
    let wanted: BTreeSet<(Kind, &str)> =
        desired.iter().map(|c| (c.kind, c.name.as_str())).collect();
    let mut out = Vec::new();
    for (kind, objects) in live {
        for object in objects {
            let controlled = object
                .owner_references()
                .iter()
                .any(|o| o.controller == Some(true) && o.uid == owner_uid);
            let name = object.metadata.name.as_deref().unwrap_or_default();
            if controlled && !wanted.contains(&(*kind, name)) {
                out.push((*kind, object));
            }
        }
    }
    out
}

/// Lists the live children of one FootballPrediction, by its instance label, for each kind.
pub async fn list_children(
    client: &Client,
    namespace: &str,
    name: &str,
    kinds: &[Kind],
) -> Result<BTreeMap<Kind, Vec<DynamicObject>>, kube::Error> {
    let params = ListParams::default().labels(&instance_selector(name));
    let mut out = BTreeMap::new();
    for kind in kinds {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &kind.api_resource());
        out.insert(*kind, api.list(&params).await?.items);
    }
    Ok(out)
}

/// What one apply pass did.
#[derive(Debug, Default)]
pub struct ApplyReport {
    /// The newest known state of each built child (the apply response, or the live object).
    pub current: HashMap<ChildKey, DynamicObject>,
    pub created: Vec<ChildKey>,
    pub updated: Vec<ChildKey>,
    pub deleted: Vec<ChildKey>,
    /// "Kind name: what failed", safe to show (Secret errors carry no API text).
    pub errors: Vec<String>,
    /// CRDs that were not served, so their kinds were skipped.
    pub missing_crds: Vec<&'static str>,
    /// Children per kind after this pass.
    pub counts: BTreeMap<Kind, i64>,
}

fn describe_error(kind: Kind, name: &str, error: &kube::Error) -> String {
    match error {
        // Never echo what the API server says about a Secret: it may quote data.
        kube::Error::Api(status) if kind == Kind::Secret => {
            format!(
                "{} {name}: rejected with {} {}",
                kind.as_str(),
                status.code,
                status.reason
            )
        }
        kube::Error::Api(status) => format!("{} {name}: {}", kind.as_str(), status.message),
        other => format!("{} {name}: {other}", kind.as_str()),
    }
}

/// Everything one apply pass needs.
pub struct ApplyContext<'a> {
    pub client: &'a Client,
    pub memo: &'a Memo,
    pub metrics: &'a Metrics,
    pub namespace: &'a str,
    pub owner_uid: &'a str,
    /// Optional CRDs that are served now.
    pub served: &'a BTreeSet<&'static str>,
}

/// Applies what changed and deletes what is no longer built. Failures of single children are
/// collected, not fatal: the rest still reconciles.
pub async fn sync(
    ctx: &ApplyContext<'_>,
    children: Vec<Child>,
    live: &BTreeMap<Kind, Vec<DynamicObject>>,
) -> ApplyReport {
    let mut report = ApplyReport::default();
    let live_by_key: HashMap<ChildKey, &DynamicObject> = live
        .iter()
        .flat_map(|(kind, objects)| objects.iter().map(move |o| ((*kind, o.name_any()), o)))
        .collect();
    let mut built = Vec::with_capacity(children.len());
    for mut child in children {
        if let Some(crd) = child.kind.required_crd()
            && !ctx.served.contains(crd)
        {
            if !report.missing_crds.contains(&crd) {
                report.missing_crds.push(crd);
            }
            continue;
        }
        *report.counts.entry(child.kind).or_default() += 1;
        let live_object = live_by_key.get(&(child.kind, child.name.clone())).copied();
        apply_one(ctx, &mut child, live_object, &mut report).await;
        built.push(child);
    }
    delete_orphans(ctx, &built, live, &mut report).await;
    report
}

/// Applies one child when [`needs_apply`] says so, and records its newest known state.
async fn apply_one(
    ctx: &ApplyContext<'_>,
    child: &mut Child,
    live_object: Option<&DynamicObject>,
    report: &mut ApplyReport,
) {
    let key = (child.kind, child.name.clone());
    let hash = stamp(&mut child.object);
    let live_value = live_object.and_then(|o| serde_json::to_value(o).ok());
    let remembered = ctx.memo.get(child.kind, ctx.namespace, &child.name);
    if !needs_apply(
        &child.object,
        &hash,
        live_value.as_ref(),
        remembered.as_ref(),
    ) {
        ctx.metrics.applied(child.kind, ApplyResult::Unchanged);
        if let Some(o) = live_object {
            report.current.insert(key, o.clone());
        }
        return;
    }
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        ctx.namespace,
        &child.kind.api_resource(),
    );
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match api
        .patch(&child.name, &params, &Patch::Apply(&child.object))
        .await
    {
        Ok(applied) => {
            let result = if live_object.is_some() {
                ApplyResult::Updated
            } else {
                ApplyResult::Created
            };
            ctx.metrics.applied(child.kind, result);
            if let Some(rv) = applied.metadata.resource_version.clone() {
                ctx.memo
                    .put(child.kind, ctx.namespace, &child.name, hash, rv);
            }
            tracing::info!(kind = child.kind.as_str(), name = %child.name, result = result.as_str(), "applied");
            match result {
                ApplyResult::Created => report.created.push(key.clone()),
                _ => report.updated.push(key.clone()),
            }
            report.current.insert(key, applied);
        }
        Err(e) => {
            ctx.metrics.applied(child.kind, ApplyResult::Failed);
            let message = describe_error(child.kind, &child.name, &e);
            tracing::warn!(kind = child.kind.as_str(), name = %child.name, error = %message, "apply failed");
            report.errors.push(message);
            if let Some(o) = live_object {
                report.current.insert(key, o.clone());
            }
        }
    }
}

/// Deletes the controlled children that were not built this time.
async fn delete_orphans(
    ctx: &ApplyContext<'_>,
    built: &[Child],
    live: &BTreeMap<Kind, Vec<DynamicObject>>,
    report: &mut ApplyReport,
) {
    for (kind, object) in orphans(built, live, ctx.owner_uid) {
        let name = object.name_any();
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), ctx.namespace, &kind.api_resource());
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {
                ctx.metrics.deleted(kind);
                ctx.memo.forget(kind, ctx.namespace, &name);
                tracing::info!(kind = kind.as_str(), name = %name, "deleted: no longer built");
                report.deleted.push((kind, name));
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => report.errors.push(describe_error(kind, &name, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn built() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "prod", "namespace": "football", "labels": {"a": "b"}},
            "spec": {"type": "ClusterIP", "ports": [{"name": "http", "port": 8080, "targetPort": "http"}], "selector": {"color": "blue"}}
        })
    }

    /// The built object as the API server returns it: defaults and server fields added.
    fn as_live(mut object: Value) -> Value {
        object["metadata"]["resourceVersion"] = json!("100");
        object["metadata"]["uid"] = json!("u1");
        object["spec"]["clusterIP"] = json!("10.96.0.10");
        object["spec"]["ports"][0]["protocol"] = json!("TCP");
        object["spec"]["sessionAffinity"] = json!("None");
        object.as_object_mut().unwrap().remove("apiVersion");
        object.as_object_mut().unwrap().remove("kind");
        object
    }

    #[test]
    fn stamping_is_deterministic_and_follows_the_content() {
        let mut a = built();
        let mut b = built();
        let ha = stamp(&mut a);
        assert_eq!(ha, stamp(&mut b));
        assert_eq!(
            a["metadata"]["annotations"]["footballprediction.io/spec-hash"],
            ha
        );
        let mut c = built();
        c["spec"]["selector"]["color"] = json!("green");
        assert_ne!(stamp(&mut c), ha);
    }

    #[test]
    fn a_steady_state_needs_no_apply() {
        let mut desired = built();
        let hash = stamp(&mut desired);
        let live = as_live(desired.clone());
        assert!(!needs_apply(&desired, &hash, Some(&live), None));
    }

    #[test]
    fn missing_changed_or_edited_children_are_applied() {
        let mut desired = built();
        let hash = stamp(&mut desired);
        assert!(needs_apply(&desired, &hash, None, None), "missing");
        let mut old = as_live(desired.clone());
        old["metadata"]["annotations"]["footballprediction.io/spec-hash"] = json!("0000000000");
        assert!(
            needs_apply(&desired, &hash, Some(&old), None),
            "built from another spec"
        );
        let mut edited = as_live(desired.clone());
        edited["spec"]["selector"]["color"] = json!("green");
        assert!(
            needs_apply(&desired, &hash, Some(&edited), None),
            "a field we own was edited by hand"
        );
        let mut removed = as_live(desired.clone());
        removed["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("a");
        assert!(
            needs_apply(&desired, &hash, Some(&removed), None),
            "a label we own was removed"
        );
    }

    #[test]
    fn normalised_objects_are_trusted_at_the_version_we_wrote() {
        let mut desired = built();
        desired["spec"]["ports"][0]["port"] = json!(8080);
        desired["spec"]["extra"] = json!("0.5");
        let hash = stamp(&mut desired);
        let mut live = as_live(desired.clone());
        live["spec"]["extra"] = json!("500m"); // the API server's canonical form
        assert!(needs_apply(&desired, &hash, Some(&live), None));
        let remembered = (hash.clone(), "100".to_owned());
        assert!(!needs_apply(
            &desired,
            &hash,
            Some(&live),
            Some(&remembered)
        ));
        live["metadata"]["resourceVersion"] = json!("101");
        assert!(
            needs_apply(&desired, &hash, Some(&live), Some(&remembered)),
            "changed since we wrote it"
        );
    }

    #[test]
    fn subset_rules() {
        assert!(is_subset(&json!({"a": {}}), Some(&json!({}))));
        assert!(is_subset(&json!({"a": []}), Some(&json!({}))));
        assert!(is_subset(&json!({"a": null}), Some(&json!({}))));
        assert!(!is_subset(&json!({"a": {"b": 1}}), Some(&json!({}))));
        assert!(is_subset(&json!({"n": 1}), Some(&json!({"n": 1.0}))));
        assert!(!is_subset(&json!({"l": [1, 2]}), Some(&json!({"l": [1]}))));
        assert!(!is_subset(&json!({"s": "x"}), Some(&json!({"s": "y"}))));
    }

    fn live_object(name: &str, owner_uid: Option<&str>) -> DynamicObject {
        let mut value = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "football"}});
        if let Some(uid) = owner_uid {
            value["metadata"]["ownerReferences"] = json!([{
                "apiVersion": "footballprediction.io/v1alpha1", "kind": "FootballPrediction", "name": "prod",
                "uid": uid, "controller": true
            }]);
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn only_controlled_children_that_are_no_longer_built_are_orphans() {
        let desired = vec![Child {
            kind: Kind::ConfigMap,
            name: "prod-config".into(),
            object: json!({}),
        }];
        let live = BTreeMap::from([(
            Kind::ConfigMap,
            vec![
                live_object("prod-config", Some("uid-1")),
                live_object("prod-dashboard", Some("uid-1")),
                live_object("not-ours", Some("uid-2")),
                live_object("unowned", None),
            ],
        )]);
        let names: Vec<String> = orphans(&desired, &live, "uid-1")
            .iter()
            .map(|(_, o)| o.name_any())
            .collect();
        assert_eq!(names, ["prod-dashboard"]);
    }

    #[test]
    fn secret_errors_never_quote_the_api_server() {
        let status = kube::core::Status::failure(
            "data[url]: Invalid value: \"postgres://user:pw@db\"",
            "Invalid",
        )
        .with_code(422);
        let message = describe_error(
            Kind::Secret,
            "prod-jwt",
            &kube::Error::Api(Box::new(status)),
        );
        assert_eq!(message, "Secret prod-jwt: rejected with 422 Invalid");
    }
}
