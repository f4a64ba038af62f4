//! Structural diff of two JSON documents, the basis of every "read, diff, write the difference" step.

use proto::outcome::FieldChange;
use serde_json::Value;

/// Lists the leaf fields that differ between `before` and `after`, depth first, in key order.
///
/// Objects are compared key by key; arrays and scalars are compared as whole values (an array
/// that differs anywhere is one change), which is what a PUT or a server-side apply replaces.
/// A key present on one side only is reported with `None` on the other.
pub fn json_diff(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    diff_at(String::new(), Some(before), Some(after), &mut changes);
    changes
}

fn diff_at(path: String, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = format!("{path}/{}", escape_pointer(key));
                diff_at(child, b.get(key), a.get(key), out);
            }
        }
        (Some(b), Some(a)) if b == a => {}
        (None, None) => {}
        (b, a) => out.push(FieldChange {
            path: if path.is_empty() { "/".to_string() } else { path },
            before: b.cloned(),
            after: a.cloned(),
        }),
    }
}

/// JSON pointer escaping (RFC 6901): `~` → `~0`, `/` → `~1`.
fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_documents_have_no_diff() {
        let doc = json!({"a": {"b": 1, "c": [1, 2]}});
        assert!(json_diff(&doc, &doc).is_empty());
    }

    #[test]
    fn changed_added_and_removed_leaves_are_listed() {
        let before = json!({"a": {"b": 1, "gone": true}, "list": [1]});
        let after = json!({"a": {"b": 2, "new": "x"}, "list": [1, 2]});
        let paths: Vec<String> = json_diff(&before, &after).into_iter().map(|c| c.path).collect();
        assert_eq!(paths, ["/a/b", "/a/gone", "/a/new", "/list"]);
    }

    #[test]
    fn keys_with_slashes_are_escaped() {
        let changes = json_diff(&json!({}), &json!({"a/b~c": 1}));
        assert_eq!(changes[0].path, "/a~1b~0c");
        assert_eq!(changes[0].before, None);
    }
}
