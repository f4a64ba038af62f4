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
    /// Parses `metadata.name=x,metadata.namespace!=y`; only `metadata.name` and
    /// `metadata.namespace` are supported, as for most types on the real server.
    pub fn parse(text: &str) -> Result<Self, String> {
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
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_owned(), value.trim().to_owned(), equal));
        }
        Ok(Self(terms))
    }

    /// Whether the object satisfies every term.
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, wanted, equal)| {
            let actual = match field.as_str() {
                "metadata.name" => object["metadata"]["name"].as_str().unwrap_or(""),
                _ => object["metadata"]["namespace"].as_str().unwrap_or(""),
            };
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
        assert!(FieldSelector::parse("metadata.name=n1").unwrap().matches(&object));
        assert!(!FieldSelector::parse("metadata.name!=n1").unwrap().matches(&object));
        assert!(FieldSelector::parse("metadata.namespace==default").unwrap().matches(&object));
        assert_eq!(FieldSelector::parse("spec.nodeName=x").unwrap_err(), "field label not supported: spec.nodeName");
    }
}
