//! Kubernetes-style label selectors over cluster labels: `env=prod`, `env!=dev`, `tier in (a,b)`,
//! `tier notin (c)`, `canary` (has the key), `!canary` (lacks it), comma-separated and all required.
//! An empty selector picks every cluster.

use std::collections::BTreeMap;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

/// A selector that cannot be parsed; `position` is the byte offset of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("selector {selector:?}: {rule} (at byte {position})")]
pub struct SelectorError {
    pub selector: String,
    pub position: usize,
    pub rule: String,
}

fn is_label_part(text: &str) -> bool {
    !text.is_empty() && text.len() <= 253 && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        if text.trim().is_empty() {
            return Ok(Selector::default());
        }
        // Requirements are separated by commas outside parentheses.
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0i32, 0usize);
        for (index, c) in text.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push((start, &text[start..index]));
                    start = index + 1;
                }
                _ => {}
            }
        }
        parts.push((start, &text[start..]));
        let requirements = parts
            .into_iter()
            .map(|(position, part)| {
                parse_requirement(part.trim()).map_err(|rule| SelectorError {
                    selector: text.to_string(),
                    position,
                    rule,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Selector { requirements })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|requirement| match requirement {
            Requirement::Equals(key, value) => labels.get(key) == Some(value),
            Requirement::NotEquals(key, value) => labels.get(key) != Some(value),
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(key, values) => labels.get(key).is_none_or(|v| !values.contains(v)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::DoesNotExist(key) => !labels.contains_key(key),
        })
    }
}

fn parse_set(key: &str, rest: &str) -> Result<(String, Vec<String>), String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("the values of {key:?} must be in parentheses"))?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    if values.iter().any(|v| !is_label_part(v)) {
        return Err(format!("the values of {key:?} must be label values"));
    }
    Ok((key.to_string(), values))
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if part.is_empty() {
        return Err("empty requirement".into());
    }
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        return if is_label_part(key) {
            Ok(Requirement::DoesNotExist(key.into()))
        } else {
            Err(format!("{key:?} is not a label key"))
        };
    }
    if let Some((key, value)) = part.split_once("!=") {
        let (key, value) = (key.trim(), value.trim());
        if !is_label_part(key) || !is_label_part(value) {
            return Err(format!("{part:?} is not key!=value"));
        }
        return Ok(Requirement::NotEquals(key.into(), value.into()));
    }
    if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
        let (key, value) = (key.trim(), value.trim());
        if !is_label_part(key) || !is_label_part(value) {
            return Err(format!("{part:?} is not key=value"));
        }
        return Ok(Requirement::Equals(key.into(), value.into()));
    }
    let mut words = part.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default().trim();
    let rest = words.next().unwrap_or_default().trim();
    if rest.is_empty() {
        return if is_label_part(key) {
            Ok(Requirement::Exists(key.into()))
        } else {
            Err(format!("{key:?} is not a label key"))
        };
    }
    if !is_label_part(key) {
        return Err(format!("{key:?} is not a label key"));
    }
    if let Some(set) = rest.strip_prefix("notin") {
        let (key, values) = parse_set(key, set)?;
        return Ok(Requirement::NotIn(key, values));
    }
    if let Some(set) = rest.strip_prefix("in") {
        let (key, values) = parse_set(key, set)?;
        return Ok(Requirement::In(key, values));
    }
    Err(format!("{part:?}: expected =, !=, in (...), notin (...), a key or !key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn empty_selects_everything() {
        assert!(Selector::parse("").unwrap().matches(&labels(&[])));
    }

    #[test]
    fn every_operator() {
        let prod_eu = labels(&[("env", "prod"), ("region", "eu"), ("canary", "true")]);
        let cases = [
            ("env=prod", true),
            ("env==prod", true),
            ("env!=prod", false),
            ("region in (eu, us)", true),
            ("region notin (eu)", false),
            ("canary", true),
            ("!canary", false),
            ("env=prod,region in (us)", false),
            ("env=prod, region in (eu,us), canary", true),
            ("missing notin (x)", true),
        ];
        for (text, expected) in cases {
            assert_eq!(Selector::parse(text).unwrap().matches(&prod_eu), expected, "{text}");
        }
    }

    #[test]
    fn malformed_selectors_say_where() {
        for bad in ["env=", "=prod", "region in eu", "a b c", "env=prod,", "!", "env=pr od"] {
            let err = Selector::parse(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
