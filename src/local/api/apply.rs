//! Patch semantics: JSON merge patch (RFC 7386) and JSON patch (RFC 6902), both via the
//! `json-patch` crate, and the simplified server-side apply merge.

use serde_json::Value;

/// RFC 7386 JSON merge patch: objects merge recursively, `null` deletes, anything else
/// (arrays included) replaces (`json_patch::merge`, the crate kube-core uses).
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Server-side apply merge: the applied configuration wins field by field; objects merge
/// recursively, arrays and scalars are replaced as a whole (every list is treated as
/// atomic, a documented simplification).
pub fn apply_merge(target: &mut Value, applied: &Value) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) => {
            for (k, v) in a {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        apply_merge(existing, v)
                    }
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, a) => *t = a.clone(),
    }
}

/// Remove from `target` the fields that this manager applied last time (`prev`) but no
/// longer applies (`now`), so a field dropped from an applied configuration disappears.
pub fn remove_unapplied(target: &mut Value, prev: &Value, now: &Value) {
    let (Value::Object(t), Value::Object(p)) = (target, prev) else {
        return;
    };
    for (k, pv) in p {
        match now.get(k) {
            None => {
                t.remove(k);
            }
            Some(nv) => {
                if let Some(tv) = t.get_mut(k) {
                    if pv.is_object() && nv.is_object() {
                        remove_unapplied(tv, pv, nv);
                    }
                }
            }
        }
    }
}

/// Why a JSON patch was not applied (the message becomes part of a 422 Invalid).
#[derive(Debug, thiserror::Error)]
pub enum JsonPatchError {
    #[error(transparent)]
    Parse(#[from] serde_json::Error),
    #[error(transparent)]
    Apply(#[from] json_patch::PatchError),
}

/// Apply an RFC 6902 JSON patch document.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let p: json_patch::Patch = serde_json::from_value(patch.clone())?;
    Ok(json_patch::patch(target, &p)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [1, 2]});
        merge_patch(&mut t, &json!({"a": [3]}));
        assert_eq!(t, json!({"a": [3]}));
    }

    #[test]
    fn apply_removes_dropped_fields() {
        let mut obj = json!({"data": {"a": "1", "b": "2", "other": "x"}});
        let prev = json!({"data": {"a": "1", "b": "2"}});
        let now = json!({"data": {"a": "3"}});
        remove_unapplied(&mut obj, &prev, &now);
        apply_merge(&mut obj, &now);
        assert_eq!(obj, json!({"data": {"a": "3", "other": "x"}}));
    }

    #[test]
    fn json_patch_ops() {
        let mut t = json!({"a": 1});
        json_patch(
            &mut t,
            &json!([{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/a"}]),
        )
        .unwrap();
        assert_eq!(t, json!({"b": 2}));
        assert!(json_patch(&mut t, &json!([{"op": "test", "path": "/b", "value": 3}])).is_err());
    }
}
