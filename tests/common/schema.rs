//! A small structural OpenAPI v3 checker for CRD schemas: types, required fields, unknown
//! fields, enums, minimum/maximum, minLength, nullable, int-or-string and preserve-unknown.
//! Enough to prove an example is a valid object per the generated CRD, offline.

use serde_json::Value;

pub fn check(value: &Value, schema: &Value, path: &str, errors: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true)
        && schema.get("properties").is_none()
    {
        return;
    }
    if value.is_null() {
        if schema["nullable"] != Value::Bool(true) {
            errors.push(format!("{path}: null is not allowed"));
        }
        return;
    }
    if schema["x-kubernetes-int-or-string"] == Value::Bool(true) {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            errors.push(format!("{path}: expected int or string"));
        }
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{path}: {value} not in {allowed:?}"));
        }
    }
    match schema["type"].as_str() {
        Some("object") => {
            let Some(obj) = value.as_object() else {
                errors.push(format!("{path}: expected object"));
                return;
            };
            for r in schema["required"].as_array().into_iter().flatten() {
                if let Some(r) = r.as_str() {
                    if !obj.contains_key(r) {
                        errors.push(format!("{path}.{r}: required"));
                    }
                }
            }
            for (k, v) in obj {
                let p = format!("{path}.{k}");
                if let Some(s) = schema["properties"].get(k) {
                    check(v, s, &p, errors);
                } else if schema["additionalProperties"].is_object() {
                    check(v, &schema["additionalProperties"], &p, errors);
                } else if schema["x-kubernetes-preserve-unknown-fields"] != Value::Bool(true) {
                    errors.push(format!("{p}: unknown field"));
                }
            }
        }
        Some("array") => match value.as_array() {
            Some(items) => {
                for (i, it) in items.iter().enumerate() {
                    check(it, &schema["items"], &format!("{path}[{i}]"), errors);
                }
            }
            None => errors.push(format!("{path}: expected array")),
        },
        Some("string") => match value.as_str() {
            Some(s) => {
                if let Some(min) = schema["minLength"].as_u64() {
                    if (s.chars().count() as u64) < min {
                        errors.push(format!("{path}: shorter than {min}"));
                    }
                }
            }
            None => errors.push(format!("{path}: expected string")),
        },
        Some("integer") => match value.as_i64() {
            Some(n) => {
                if let Some(min) = schema["minimum"].as_f64() {
                    if (n as f64) < min {
                        errors.push(format!("{path}: {n} below minimum {min}"));
                    }
                }
                if let Some(max) = schema["maximum"].as_f64() {
                    if (n as f64) > max {
                        errors.push(format!("{path}: {n} above maximum {max}"));
                    }
                }
            }
            None => errors.push(format!("{path}: expected integer")),
        },
        Some("number") if !value.is_number() => errors.push(format!("{path}: expected number")),
        Some("boolean") if !value.is_boolean() => errors.push(format!("{path}: expected boolean")),
        _ => {}
    }
}
