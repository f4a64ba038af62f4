//! Redaction of secret values from text and JSON before they leave for an archive, a log or a
//! support ticket (the diagnostics bundle of Copy-WindowsHostsLogs' job).
//!
//! ```text
//!   known secrets (SecretString) ──► Redactor::new ──► needles: each value, its base64 forms,
//!                                                      its JSON-escaped forms, the password of
//!                                                      a DOMAIN\user:password credential
//!   text / serde_json::Value ──► redact_text / redact_json ──► same, with "<redacted>"
//! ```
//!
//! Two rules apply together:
//! - **Known values**: every occurrence of a needle is replaced, wherever it stands.
//! - **Secret keys** ([`is_secret_key`]): the value of a JSON member, or of a `key=value` /
//!   `key: value` assignment in text, whose key names a secret, whatever the value is.
//!
//! **Caveats:** a secret in an encoding not listed above (URL-encoded, UTF-16, split over
//! lines, embedded mid-stream in a larger base64 blob) is not found by value; the key rule may
//! still catch it. A secret that is itself part of the marker text (`redacted`) cannot be told
//! apart from the marker.

mod keys;

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::Value;

pub use keys::{is_secret_key, redact_assignments};

use crate::SecretString;

/// What stands where a secret was.
pub const REDACTED: &str = "<redacted>";

/// How many times a text is re-scanned for needles: a replacement can make a needle appear
/// across the marker's edge (a secret like `>a>`), which a further pass removes.
const MAX_PASSES: usize = 4;

/// Removes known secret values and the values of secret keys. Built once per bundle from the
/// secrets the caller holds; cheap to apply many times.
///
/// **Invariant:** its `Debug` output names how many needles it holds, never a needle.
pub struct Redactor {
    /// Every form of every known secret, longest first so the widest match wins.
    needles: Vec<SecretString>,
}

impl Redactor {
    /// A redactor for `secrets` (empty values are ignored). For a `DOMAIN\user:password`
    /// credential the password alone is a needle too, since it also travels on its own.
    pub fn new(secrets: &[&SecretString]) -> Redactor {
        let mut needles: Vec<String> = Vec::new();
        for secret in secrets {
            let value = secret.expose();
            add_forms(&mut needles, value);
            if let Some(password) = credential_password(value) {
                add_forms(&mut needles, password);
            }
        }
        needles.retain(|needle| !needle.is_empty());
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Redactor { needles: needles.into_iter().map(SecretString::new).collect() }
    }

    /// `text` with every known secret value and every secret-key assignment replaced by [`REDACTED`].
    pub fn redact_text(&self, text: &str) -> String {
        let mut redacted = text.to_string();
        for _ in 0..MAX_PASSES {
            let next = self.replace_needles(&redacted);
            if next == redacted {
                break;
            }
            redacted = next;
        }
        redact_assignments(&redacted)
    }

    /// Redacts `value` in place: the value of every member whose key names a secret (strings and
    /// numbers in it, at any depth; booleans and nulls say nothing secret and stay), known secret
    /// values in every string and key, and strings that hold JSON (such as kubectl's
    /// `last-applied-configuration` annotation) are redacted as JSON.
    pub fn redact_json(&self, value: &mut Value) {
        self.redact_value(value, false);
    }

    fn redact_value(&self, value: &mut Value, under_secret_key: bool) {
        match value {
            Value::String(text) if under_secret_key => {
                if text.as_str() != REDACTED && !text.is_empty() {
                    *text = REDACTED.to_string();
                }
            }
            Value::Number(_) if under_secret_key => *value = Value::String(REDACTED.to_string()),
            Value::String(text) => *text = self.redact_string(text),
            Value::Array(items) => items.iter_mut().for_each(|item| self.redact_value(item, under_secret_key)),
            Value::Object(members) => {
                let old = std::mem::take(members);
                for (key, mut member) in old {
                    self.redact_value(&mut member, under_secret_key || is_secret_key(&key));
                    members.insert(self.redact_text(&key), member);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// A string member: JSON inside is redacted as JSON (keeping it JSON), anything else as text.
    fn redact_string(&self, text: &str) -> String {
        let trimmed = text.trim_start();
        if (trimmed.starts_with('{') || trimmed.starts_with('['))
            && let Ok(mut embedded) = serde_json::from_str::<Value>(text)
        {
            self.redact_json(&mut embedded);
            return embedded.to_string();
        }
        self.redact_text(text)
    }

    /// One left-to-right pass replacing needle occurrences, longest needle first at each position.
    fn replace_needles(&self, text: &str) -> String {
        if self.needles.is_empty() {
            return text.to_string();
        }
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        let mut index = 0;
        while index < bytes.len() {
            let rest = &bytes[index..];
            match self.needles.iter().find(|needle| rest.starts_with(needle.expose().as_bytes())) {
                // A needle is valid UTF-8, so a match starts and ends on character boundaries.
                Some(needle) => {
                    out.push_str(&text[copied..index]);
                    out.push_str(REDACTED);
                    index += needle.expose().len();
                    copied = index;
                }
                None => index += 1,
            }
        }
        out.push_str(&text[copied..]);
        out
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor").field("needles", &self.needles.len()).finish()
    }
}

/// The value as it appears in text, base64 (standard and URL-safe, padded or not) and JSON
/// strings (once and twice escaped: JSON inside a JSON string).
fn add_forms(needles: &mut Vec<String>, value: &str) {
    if value.is_empty() {
        return;
    }
    needles.push(value.to_string());
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        needles.push(engine.encode(value));
    }
    let escaped_once = json_escaped(value);
    let escaped_twice = json_escaped(&escaped_once);
    needles.push(escaped_once);
    needles.push(escaped_twice);
}

/// The inside of the JSON string literal for `value`, without the quotes.
fn json_escaped(value: &str) -> String {
    let literal = Value::String(value.to_string()).to_string();
    literal[1..literal.len() - 1].to_string()
}

/// The password of a `DOMAIN\user:password` credential (the Key Vault secret's format): what
/// follows the first `:` after the backslash. Account names cannot contain `:`.
fn credential_password(value: &str) -> Option<&str> {
    let (account, password) = value.split_once(':')?;
    let (domain, user) = account.split_once('\\')?;
    (!domain.is_empty() && !user.is_empty() && !password.is_empty()).then_some(password)
}

#[cfg(test)]
mod tests;
