//! `labelSelector` and `fieldSelector` query parameters: parsing with the API server's
//! grammar and matching against stored objects.

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed `labelSelector`; empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LabelSelector(Vec<LabelRequirement>);

/// A parsed `fieldSelector`: `(field, wanted value, equal?)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct FieldSelector(Vec<(String, String, bool)>);

/// The fields every type supports in a field selector.
const METADATA_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// The extra selectable fields of core/v1 Event, as the API server registers them
/// (`pkg/registry/core/event/strategy.go`), each with the JSON pointer it reads.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("involvedObject.kind", "/involvedObject/kind"),
    ("involvedObject.namespace", "/involvedObject/namespace"),
    ("involvedObject.name", "/involvedObject/name"),
    ("involvedObject.uid", "/involvedObject/uid"),
    ("involvedObject.apiVersion", "/involvedObject/apiVersion"),
    ("involvedObject.resourceVersion", "/involvedObject/resourceVersion"),
    ("involvedObject.fieldPath", "/involvedObject/fieldPath"),
    ("reason", "/reason"),
    ("reportingComponent", "/reportingComponent"),
    ("source", "/source/component"),
    ("type", "/type"),
];

/// Where a selectable field of `kind` lives in the object, `None` if the kind does not support it.
fn field_pointer(kind: &str, field: &str) -> Option<String> {
    if METADATA_FIELDS.contains(&field) {
        return Some(format!("/{}", field.replace('.', "/")));
    }
    match kind {
        "Event" => EVENT_FIELDS.iter().find(|(name, _)| *name == field).map(|(_, pointer)| (*pointer).to_owned()),
        _ => None,
    }
}

/// Splits on commas that are not inside parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (index, character) in text.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms.into_iter().map(str::trim).filter(|term| !term.is_empty()).collect()
}

fn parse_set(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(inner.split(',').map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect())
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`; the error text is the server's message.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_terms(text) {
            let requirement = if let Some(key) = term.strip_prefix('!') {
                LabelRequirement::DoesNotExist(key.trim().to_owned())
            } else if let Some((key, value)) = term.split_once("!=") {
                LabelRequirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                LabelRequirement::Equals(key.trim().to_owned(), value.trim().to_owned())
            } else if let Some((key, set)) = term.split_once(" notin ") {
                let values = parse_set(set).ok_or_else(|| format!("unable to parse requirement: {term}"))?;
                LabelRequirement::NotIn(key.trim().to_owned(), values)
            } else if let Some((key, set)) = term.split_once(" in ") {
                let values = parse_set(set).ok_or_else(|| format!("unable to parse requirement: {term}"))?;
                LabelRequirement::In(key.trim().to_owned(), values)
            } else if term.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
                LabelRequirement::Exists(term.to_owned())
            } else {
                return Err(format!("unable to parse requirement: {term}"));
            };
            requirements.push(requirement);
        }
        Ok(Self(requirements))
    }

    /// Whether the object's labels satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        self.0.iter().all(|requirement| match requirement {
            LabelRequirement::Equals(key, value) => label(key) == Some(value.as_str()),
            LabelRequirement::NotEquals(key, value) => label(key) != Some(value.as_str()),
            LabelRequirement::In(key, values) => label(key).is_some_and(|v| values.iter().any(|w| w == v)),
            LabelRequirement::NotIn(key, values) => label(key).is_none_or(|v| values.iter().all(|w| w != v)),
            LabelRequirement::Exists(key) => label(key).is_some(),
            LabelRequirement::DoesNotExist(key) => label(key).is_none(),
        })
    }
}

impl FieldSelector {
    /// Parses `metadata.name=x,metadata.namespace!=y` for objects of `kind`: `metadata.name`
    /// and `metadata.namespace` for every kind, plus the Event fields (`involvedObject.kind`,
    /// `reason`, …) for Events, as the real server; other fields are refused with its message.
    pub fn parse(text: &str, kind: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in split_terms(text) {
            let (field, value, equal) = if let Some((field, value)) = term.split_once("!=") {
                (field, value, false)
            } else if let Some((field, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (field, value, true)
            } else {
                return Err(format!("invalid selector: '{text}'; can't understand '{term}'"));
            };
            let field = field.trim();
            let Some(pointer) = field_pointer(kind, field) else {
                return Err(format!("field label not supported: {field}"));
            };
            terms.push((pointer, value.trim().to_owned(), equal));
        }
        Ok(Self(terms))
    }

    /// Whether the object satisfies every term.
    pub fn matches(&self, object: &Value) -> bool {
        // A missing field selects as the empty string, as on the real server.
        self.0.iter().all(|(pointer, wanted, equal)| {
            let actual = object.pointer(pointer).and_then(Value::as_str).unwrap_or("");
            (actual == wanted) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mk_object(labels: Value) -> Value {
        json!({"metadata": {"name": "n1", "namespace": "default", "labels": labels}})
    }

    #[test]
    fn equality_and_set_requirements() {
        let object = mk_object(json!({"kubernetes.io/os": "windows", "tier": "web"}));
        assert!(LabelSelector::parse("kubernetes.io/os=windows").unwrap().matches(&object));
        assert!(!LabelSelector::parse("kubernetes.io/os=linux").unwrap().matches(&object));
        assert!(LabelSelector::parse("tier in (web, db),kubernetes.io/os!=linux").unwrap().matches(&object));
        assert!(!LabelSelector::parse("tier notin (web)").unwrap().matches(&object));
        assert!(LabelSelector::parse("tier,!missing").unwrap().matches(&object));
        assert!(!LabelSelector::parse("missing").unwrap().matches(&object));
    }

    #[test]
    fn empty_selector_matches_all() {
        assert!(LabelSelector::parse("").unwrap().matches(&mk_object(json!(null))));
    }

    #[test]
    fn malformed_label_selector_is_rejected() {
        assert!(LabelSelector::parse("a in x").is_err());
    }

    #[test]
    fn field_selector_by_name() {
        let object = mk_object(json!({}));
        assert!(FieldSelector::parse("metadata.name=n1", "ConfigMap").unwrap().matches(&object));
        assert!(!FieldSelector::parse("metadata.name!=n1", "ConfigMap").unwrap().matches(&object));
        assert!(FieldSelector::parse("metadata.namespace==default", "ConfigMap").unwrap().matches(&object));
        assert_eq!(
            FieldSelector::parse("spec.nodeName=x", "ConfigMap").unwrap_err(),
            "field label not supported: spec.nodeName"
        );
    }

    #[test]
    fn events_select_on_involved_object_reason_and_source() {
        let event = json!({"metadata": {"name": "e1", "namespace": "default"},
            "involvedObject": {"kind": "Node", "name": "akswin000000"}, "reason": "FailedCreatePodSandBox",
            "type": "Warning", "source": {"component": "kubelet"}});
        let select = |text| FieldSelector::parse(text, "Event").unwrap().matches(&event);
        assert!(select("involvedObject.kind=Node,involvedObject.name=akswin000000"));
        assert!(!select("involvedObject.kind=Pod"));
        assert!(select("reason=FailedCreatePodSandBox,type=Warning,source=kubelet"));
        assert!(select("involvedObject.namespace="));
        assert_eq!(
            FieldSelector::parse("involvedObject.kind=Node", "ConfigMap").unwrap_err(),
            "field label not supported: involvedObject.kind"
        );
    }
}
