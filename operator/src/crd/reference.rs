//! Renders docs/crd-reference.md from the generated CRD, so the reference cannot drift from the types.

use std::fmt::Write as _;

use kube::CustomResourceExt;
use serde_json::Value;

use super::FootballPrediction;

/// The Markdown reference of the CRD: names, printer columns, CEL rules and every field.
pub fn render_reference() -> String {
    let crd = FootballPrediction::crd();
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null);

    let mut out = String::new();
    out.push_str("# FootballPrediction CRD reference\n\n");
    out.push_str(
        "<!-- Generated from the Rust types by `cargo run -p fp-operator --bin crdgen -- --reference`; \
         do not edit. A unit test fails when this file differs from the types. -->\n\n",
    );
    let names = &crd.spec.names;
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| Group | `{}` |", crd.spec.group);
    if let Some(version) = crd.spec.versions.first() {
        let _ = writeln!(out, "| Version | `{}` |", version.name);
    }
    let _ = writeln!(out, "| Kind | `{}` |", names.kind);
    let _ = writeln!(out, "| Plural | `{}` |", names.plural);
    let short = names.short_names.clone().unwrap_or_default().join("`, `");
    let _ = writeln!(out, "| Short names | `{short}` |");
    let _ = writeln!(out, "| Scope | {} |", crd.spec.scope);
    let _ = writeln!(out, "| Status subresource | yes |\n");

    if let Some(columns) = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.additional_printer_columns.as_ref())
    {
        out.push_str(
            "## `kubectl get fp` columns\n\n| Column | Type | JSONPath |\n|---|---|---|\n",
        );
        for c in columns {
            let _ = writeln!(out, "| {} | {} | `{}` |", c.name, c.type_, c.json_path);
        }
        out.push('\n');
    }

    out.push_str(
        "## Validation rules checked at admission (CEL)\n\n\
         Besides the per-field constraints below (types, ranges, patterns, enums, required fields, \
         unknown fields refused), the API server evaluates these rules; a failing rule refuses the \
         manifest with the message shown.\n\n| Where | Rule | Message |\n|---|---|---|\n",
    );
    collect_rules(&schema, "", &mut out);
    out.push('\n');

    out.push_str(
        "## Fields\n\nTypes are OpenAPI types; `?` marks optional fields. Durations are Go-style \
         durations of whole units (`500ms`, `15m`, `1h30m`); schedules are five-field cron \
         expressions or macros such as `@daily`.\n\n",
    );
    if let Some(props) = schema.get("properties") {
        for section in ["spec", "status"] {
            if let Some(node) = props.get(section) {
                render_object(section, node, &mut out);
            }
        }
    }
    out
}

fn collect_rules(node: &Value, path: &str, out: &mut String) {
    if let Some(rules) = node
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in rules {
            let text = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
            let message = rule
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let where_ = if path.is_empty() { "(object)" } else { path };
            let _ = writeln!(
                out,
                "| `{where_}` | `{}` | {} |",
                escape(text),
                escape(message)
            );
        }
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            collect_rules(child, &join(path, name), out);
        }
    }
    if let Some(items) = node.get("items") {
        collect_rules(items, &format!("{path}[]"), out);
    }
}

fn render_object(path: &str, node: &Value, out: &mut String) {
    let Some(props) = node.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = node
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let _ = writeln!(out, "### `{path}`\n");
    if let Some(desc) = node.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "{}\n", one_line(desc));
    }
    out.push_str("| Field | Type | Default | Constraints | Description |\n|---|---|---|---|---|\n");
    let mut nested = Vec::new();
    for (name, child) in props {
        let optional = if required.contains(&name.as_str()) {
            ""
        } else {
            "?"
        };
        let default = child
            .get("default")
            .map(|d| format!("`{}`", escape(&compact(d))))
            .unwrap_or_default();
        let description = child
            .get("description")
            .and_then(Value::as_str)
            .map(one_line)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| `{name}`{optional} | {} | {default} | {} | {} |",
            type_name(child),
            constraints(child),
            escape(&description)
        );
        let child_path = join(path, name);
        if child.get("properties").is_some() {
            nested.push((child_path.clone(), child));
        }
        if let Some(items) = child.get("items")
            && items.get("properties").is_some()
        {
            nested.push((format!("{child_path}[]"), items));
        }
    }
    out.push('\n');
    for (child_path, child) in nested {
        render_object(&child_path, child, out);
    }
}

fn type_name(node: &Value) -> String {
    if node
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return "int or string".into();
    }
    let ty = node.get("type").and_then(Value::as_str).unwrap_or("any");
    match ty {
        "array" => format!(
            "[]{}",
            node.get("items")
                .map(type_name)
                .unwrap_or_else(|| "any".into())
        ),
        "object" if node.get("properties").is_none() => {
            let value = node
                .get("additionalProperties")
                .map(type_name)
                .unwrap_or_else(|| "any".into());
            format!("map[string]{value}")
        }
        "integer" | "number" => match node.get("format").and_then(Value::as_str) {
            Some(format) => format!("{ty} ({format})"),
            None => ty.into(),
        },
        "string" if node.get("format").and_then(Value::as_str) == Some("date-time") => {
            "date-time".into()
        }
        other => other.into(),
    }
}

fn constraints(node: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(values) = node.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values
            .iter()
            .filter_map(Value::as_str)
            .map(|v| format!("`{v}`"))
            .collect();
        parts.push(format!("one of {}", values.join(", ")));
    }
    for (key, label) in [("minimum", "≥"), ("maximum", "≤")] {
        if let Some(n) = node.get(key).and_then(Value::as_f64) {
            parts.push(format!("{label} {}", number(n)));
        }
    }
    for (key, label) in [
        ("minLength", "length ≥"),
        ("maxLength", "length ≤"),
        ("minItems", "items ≥"),
        ("maxItems", "items ≤"),
    ] {
        if let Some(n) = node.get(key).and_then(Value::as_u64) {
            parts.push(format!("{label} {n}"));
        }
    }
    if let Some(pattern) = node.get("pattern").and_then(Value::as_str) {
        parts.push(format!("pattern `{}`", escape(pattern)));
    }
    if let Some(items) = node.get("items") {
        let inner = constraints(items);
        if !inner.is_empty() && items.get("properties").is_none() {
            parts.push(format!("each item: {inner}"));
        }
    }
    parts.join("; ")
}

fn number(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{n:.0}")
    } else {
        format!("{n}")
    }
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_lists_every_spec_field_with_default_and_constraints() {
        let doc = render_reference();
        assert!(
            doc.contains("| `replicas`? | integer (int32) | `2` | ≥ 1; ≤ 1000 |"),
            "{doc}"
        );
        assert!(doc.contains("### `spec.rollout.analysis.checks[]`"));
        assert!(doc.contains("| `dnsNames` | []string |"));
        assert!(doc.contains("spec.tls.dnsNames must include spec.ingress.host"));
        assert!(doc.contains("| Short names | `fp` |"));
    }

    #[test]
    fn reference_types_render_maps_enums_and_arrays() {
        let map = serde_json::json!({"type": "object", "additionalProperties": {"type": "string"}});
        assert_eq!(type_name(&map), "map[string]string");
        let list = serde_json::json!({"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3});
        assert_eq!(type_name(&list), "[]string");
        assert_eq!(constraints(&list), "items ≤ 3; each item: length ≤ 5");
        let en = serde_json::json!({"type": "string", "enum": ["A", "B", null]});
        assert_eq!(constraints(&en), "one of `A`, `B`");
    }
}
