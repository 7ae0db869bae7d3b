//! The two patch formats the fake API accepts: JSON merge patch and JSON
//! patch, applied to stored objects.

use serde_json::{Map, Value};

/// RFC 7386 JSON merge patch.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// RFC 6902 JSON patch: `add`, `remove`, `replace`, `test`.
pub(crate) fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch must be a list")?;
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).ok_or("op missing")?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("path missing")?;
        let value = op.get("value").cloned();
        let (parent_path, last) = match path.rfind('/') {
            Some(i) => (
                &path[..i],
                path[i + 1..].replace("~1", "/").replace("~0", "~"),
            ),
            None => return Err(format!("invalid path {path:?}")),
        };
        match kind {
            "test" => {
                if target.pointer(path) != value.as_ref() {
                    return Err(format!("test failed at {path}"));
                }
            }
            "remove" => {
                let parent = target.pointer_mut(parent_path).ok_or("path not found")?;
                match parent {
                    Value::Object(o) => {
                        o.remove(&last).ok_or("path not found")?;
                    }
                    Value::Array(a) => {
                        let i: usize = last.parse().map_err(|_| "bad index")?;
                        if i >= a.len() {
                            return Err("index out of range".into());
                        }
                        a.remove(i);
                    }
                    _ => return Err("path not found".into()),
                }
            }
            "add" | "replace" => {
                let value = value.ok_or("value missing")?;
                if path.is_empty() {
                    *target = value;
                    continue;
                }
                let parent = target.pointer_mut(parent_path).ok_or("path not found")?;
                match parent {
                    Value::Object(o) => {
                        if kind == "replace" && !o.contains_key(&last) {
                            return Err("path not found".into());
                        }
                        o.insert(last, value);
                    }
                    Value::Array(a) => {
                        if last == "-" {
                            a.push(value);
                        } else {
                            let i: usize = last.parse().map_err(|_| "bad index")?;
                            if kind == "replace" {
                                *a.get_mut(i).ok_or("index out of range")? = value;
                            } else if i <= a.len() {
                                a.insert(i, value);
                            } else {
                                return Err("index out of range".into());
                            }
                        }
                    }
                    _ => return Err("path not found".into()),
                }
            }
            other => return Err(format!("unsupported op {other:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_and_json_patch() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1]});
        merge_patch(&mut v, &json!({"a": {"b": null, "d": 3}}));
        assert_eq!(v, json!({"a": {"c": 2, "d": 3}, "l": [1]}));
        json_patch(
            &mut v,
            &json!([{"op": "add", "path": "/l/-", "value": 2}, {"op": "replace", "path": "/a/c", "value": 5}, {"op": "remove", "path": "/a/d"}]),
        )
        .unwrap();
        assert_eq!(v, json!({"a": {"c": 5}, "l": [1, 2]}));
        assert!(json_patch(&mut v, &json!([{"op": "test", "path": "/a/c", "value": 6}])).is_err());
    }
}
