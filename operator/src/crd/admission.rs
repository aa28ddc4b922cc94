//! A local stand-in for the API server's admission of a FootballPrediction manifest, for tests:
//! the structural OpenAPI checks (unknown fields, types, required, ranges, lengths, patterns, enums)
//! with the API server's message formats, defaulting, then the CEL rules through kube's CEL
//! evaluator. The real API server gives the final word in the e2e tests; this keeps every rule
//! testable without a cluster.

use kube::CustomResourceExt;
use regex::Regex;
use serde_json::Value;

use super::FootballPrediction;

/// Validates a manifest as `kubectl apply` (strict field validation) would; `Err` lists the messages.
pub fn admit(manifest: &Value) -> Result<FootballPrediction, Vec<String>> {
    let schema = root_schema();
    let mut errors = Vec::new();
    check(&schema, manifest, "", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let fp: FootballPrediction =
        serde_json::from_value(manifest.clone()).map_err(|e| vec![format!("decode: {e}")])?;
    // Defaults are part of the schema; the defaulted object must itself be valid.
    let defaulted = serde_json::to_value(&fp).map_err(|e| vec![format!("encode: {e}")])?;
    check(&schema, &defaulted, "", &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    if let Err(cel) = kube::core::cel::validate_cel(&fp) {
        return Err(cel
            .iter()
            .map(|e| {
                // The API server's format (checked against kube-apiserver v1.37).
                let path = if e.field_path.is_empty() {
                    "<nil>"
                } else {
                    e.field_path.as_str()
                };
                format!("{path}: Invalid value: {}", e.message)
            })
            .collect());
    }
    Ok(fp)
}

fn root_schema() -> Value {
    let crd = FootballPrediction::crd();
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    if value.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) {
            let ty = schema
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("object");
            errors.push(format!(
                "{path}: Invalid value: \"null\": {path} in body must be of type {ty}: \"null\""
            ));
        }
        return;
    }
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true)
    {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            errors.push(format!(
                "{path}: Invalid value: {value}: {path} in body must be of type int-or-string"
            ));
        }
        return;
    }
    let Some(ty) = schema.get("type").and_then(Value::as_str) else {
        return;
    };
    let actual = json_type(value);
    let type_ok = match ty {
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        other => other == actual,
    };
    if !type_ok {
        errors.push(format!(
            "{path}: Invalid value: \"{actual}\": {path} in body must be of type {ty}: \"{actual}\""
        ));
        return;
    }
    check_enum(schema, value, path, errors);
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for field in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(field) {
                        errors.push(format!("{}: Required value", join(path, field)));
                    }
                }
            }
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let preserve = schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true);
            for (key, child) in map {
                // The API server handles the root's type meta and ObjectMeta itself.
                if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let child_path = join(path, key);
                match (props.and_then(|p| p.get(key)), additional) {
                    (Some(child_schema), _) => check(child_schema, child, &child_path, errors),
                    (None, Some(child_schema)) => check(child_schema, child, &child_path, errors),
                    (None, None) if preserve => {}
                    (None, None) => errors.push(format!("unknown field \"{child_path}\"")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                errors.push(format!(
                    "{path}: Invalid value: {}: {path} in body should have at least {min} items",
                    items.len()
                ));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && (items.len() as u64) > max
            {
                errors.push(format!(
                    "{path}: Too many: {}: must have at most {max} items",
                    items.len()
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::String(s) => check_string(schema, s, path, errors),
        Value::Number(n) => {
            let v = n.as_f64().unwrap_or_default();
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && v < min
            {
                errors.push(format!(
                    "{path}: Invalid value: {n}: {path} in body should be greater than or equal to {}",
                    fmt_number(min)
                ));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && v > max
            {
                errors.push(format!(
                    "{path}: Invalid value: {n}: {path} in body should be less than or equal to {}",
                    fmt_number(max)
                ));
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

fn check_enum(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if allowed.contains(value) {
        return;
    }
    let supported: Vec<String> = allowed
        .iter()
        .filter(|v| !v.is_null())
        .map(Value::to_string)
        .collect();
    errors.push(format!(
        "{path}: Unsupported value: {value}: supported values: {}",
        supported.join(", ")
    ));
}

fn check_string(schema: &Value, s: &str, path: &str, errors: &mut Vec<String>) {
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (s.chars().count() as u64) < min
    {
        errors.push(format!(
            "{path}: Invalid value: \"{s}\": {path} in body should be at least {min} chars long"
        ));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && (s.len() as u64) > max
    {
        errors.push(format!(
            "{path}: Too long: may not be more than {max} bytes"
        ));
        // The API server reports nothing else about an over-long string.
        return;
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match Regex::new(pattern) {
            Ok(re) if !re.is_match(s) => {
                errors.push(format!(
                    "{path}: Invalid value: \"{s}\": {path} in body should match '{pattern}'"
                ));
            }
            Ok(_) => {}
            Err(e) => errors.push(format!("{path}: schema pattern does not compile: {e}")),
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn fmt_number(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{n:.0}")
    } else {
        format!("{n}")
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}
