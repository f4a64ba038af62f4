//! JSON patch (RFC 6902, `application/json-patch+json`) as the API server applies it with
//! evanphx/json-patch: `add`, `remove`, `replace`, `move`, `copy` and `test` on JSON-pointer
//! paths (RFC 6901, `~0`/`~1` escapes, `-` for the end of an array). kubectl sends one when it
//! migrates managed fields between client-side and server-side apply.

use serde_json::Value;

/// Why a patch could not be applied; the message is the API server's wording for a 422/400.
pub(crate) type PatchError = String;

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split(path: &str) -> Result<(Vec<String>, String), PatchError> {
    if path.is_empty() {
        return Err("the root of a document cannot be patched".into());
    }
    let rest = path.strip_prefix('/').ok_or_else(|| format!("invalid JSON pointer: {path:?}"))?;
    let mut tokens: Vec<String> = rest.split('/').map(unescape).collect();
    let last = tokens.pop().unwrap_or_default();
    Ok((tokens, last))
}

fn parent<'a>(document: &'a mut Value, tokens: &[String], path: &str) -> Result<&'a mut Value, PatchError> {
    let mut current = document;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|index| items.get_mut(index)),
            _ => None,
        }
        .ok_or_else(|| format!("doc is missing path: {path:?}"))?;
    }
    Ok(current)
}

fn get(document: &Value, path: &str) -> Result<Value, PatchError> {
    document.pointer(path).cloned().ok_or_else(|| format!("doc is missing path: {path:?}"))
}

fn add(document: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    let (tokens, last) = split(path)?;
    match parent(document, &tokens, path)? {
        Value::Object(map) => {
            map.insert(last, value);
            Ok(())
        }
        Value::Array(items) => {
            let index = if last == "-" {
                items.len()
            } else {
                last.parse::<usize>().map_err(|_| format!("invalid array index {last:?}"))?
            };
            if index > items.len() {
                return Err(format!("add operation does not apply: doc is missing path: {path:?}"));
            }
            items.insert(index, value);
            Ok(())
        }
        _ => Err(format!("doc is missing path: {path:?}")),
    }
}

fn remove(document: &mut Value, path: &str) -> Result<Value, PatchError> {
    let (tokens, last) = split(path)?;
    let missing = || format!("remove operation does not apply: doc is missing path: {path:?}");
    match parent(document, &tokens, path)? {
        Value::Object(map) => map.remove(&last).ok_or_else(missing),
        Value::Array(items) => {
            let index = last.parse::<usize>().map_err(|_| missing())?;
            (index < items.len()).then(|| items.remove(index)).ok_or_else(missing)
        }
        _ => Err(missing()),
    }
}

/// Applies `patch` (an array of operations) to `document`; all or nothing.
pub(crate) fn apply(document: &Value, patch: &Value) -> Result<Value, PatchError> {
    let operations = patch.as_array().ok_or("a JSON patch must be an array of operations")?;
    let mut result = document.clone();
    for operation in operations {
        let op = operation["op"].as_str().unwrap_or("");
        let path = operation["path"].as_str().ok_or_else(|| format!("operation {op:?} has no path"))?;
        let value = || operation.get("value").cloned().ok_or_else(|| format!("operation {op:?} has no value"));
        let from = || operation["from"].as_str().ok_or_else(|| format!("operation {op:?} has no from"));
        match op {
            "add" => add(&mut result, path, value()?)?,
            "remove" => {
                remove(&mut result, path)?;
            }
            "replace" => {
                remove(&mut result, path)
                    .map_err(|_| format!("replace operation does not apply: doc is missing key: {path}"))?;
                add(&mut result, path, value()?)?;
            }
            "move" => {
                let moved = remove(&mut result, from()?)?;
                add(&mut result, path, moved)?;
            }
            "copy" => {
                let copied = get(&result, from()?)?;
                add(&mut result, path, copied)?;
            }
            "test" => {
                if get(&result, path)? != value()? {
                    return Err(format!("testing value {path} failed: test failed"));
                }
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_operation_applies() {
        let document = json!({"metadata": {"annotations": {"a/b": "1"}}, "list": [1, 2]});
        let patch = json!([
            {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}},
            {"op": "replace", "path": "/metadata/annotations/a~1b", "value": "2"},
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "remove", "path": "/list/0"},
            {"op": "copy", "from": "/list", "path": "/copy"},
            {"op": "move", "from": "/copy", "path": "/moved"},
            {"op": "test", "path": "/moved", "value": [2, 3]},
        ]);
        assert_eq!(
            apply(&document, &patch).unwrap(),
            json!({"metadata": {"annotations": {"a/b": "2"}, "labels": {"x": "y"}}, "list": [2, 3], "moved": [2, 3]})
        );
    }

    #[test]
    fn failures_leave_nothing_half_done() {
        let document = json!({"a": 1});
        assert!(
            apply(&document, &json!([{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/c"}]))
                .is_err()
        );
        assert!(apply(&document, &json!([{"op": "test", "path": "/a", "value": 2}])).is_err());
        assert!(apply(&document, &json!({"op": "add"})).is_err());
        assert!(apply(&document, &json!([{"op": "replace", "path": "/missing", "value": 2}])).is_err());
    }
}
