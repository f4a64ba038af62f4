//! Key-based redaction: which keys name a secret, and `key=value` / `key: value` assignments in
//! free text (log lines, event messages, headers) whose value is therefore secret.
//!
//! A key names a secret when, lower-cased and without `_`, `-` and `.`, it is one of
//! [`SECRET_KEYS`] or ends in `password`, `secret` or `token` (`clientSecret`, `db_password`,
//! `serviceAccountToken`, `msDS-ManagedPassword`). Keys that only *refer* to a secret —
//! `secretUri`, `SecretUri`, `secret_name`, `secretRef` — do not match: the secret word is not
//! at their end.

use super::REDACTED;

/// Normalised key names whose value is a secret.
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "unicodepwd",
    "secret",
    "clientsecret",
    "token",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "authorization",
    "proxyauthorization",
    "apikey",
    "privatekey",
];
/// Normalised endings that make a key secret.
const SECRET_SUFFIXES: &[&str] = &["password", "secret", "token"];
/// HTTP authentication schemes: in `Authorization: Bearer xyz` the credential is the next word.
const AUTH_SCHEMES: &[&str] = &["bearer", "basic", "negotiate", "digest", "ntlm"];

/// True when `key` names a secret value (case-insensitive; see the module doc).
pub fn is_secret_key(key: &str) -> bool {
    let normalized: String =
        key.chars().filter(|c| !matches!(c, '_' | '-' | '.')).flat_map(char::to_lowercase).collect();
    SECRET_KEYS.contains(&normalized.as_str()) || SECRET_SUFFIXES.iter().any(|suffix| normalized.ends_with(suffix))
}

fn is_key_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-' || byte == b'.'
}

/// Ends an unquoted value.
fn ends_value(byte: u8) -> bool {
    byte.is_ascii_whitespace() || b",;&\"'<>(){}[]".contains(&byte)
}

/// Replaces the value of every assignment to a secret key in `text` with [`REDACTED`]:
/// `password=x`, `"token": "x"`, `{\"secret\":\"x\"}` (JSON inside a string), `Authorization:
/// Bearer x` (the scheme stays). An empty value, or one that is already the marker, is left alone.
pub fn redact_assignments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut index = 0;
    while index < bytes.len() {
        let starts_key = is_key_byte(bytes[index]) && (index == 0 || !is_key_byte(bytes[index - 1]));
        if !starts_key {
            index += 1;
            continue;
        }
        let mut key_end = index;
        while key_end < bytes.len() && is_key_byte(bytes[key_end]) {
            key_end += 1;
        }
        // Every boundary used below sits next to an ASCII byte, so slicing `text` is safe.
        if is_secret_key(&text[index..key_end])
            && let Some((value_start, value_end)) = value_after(bytes, key_end)
        {
            out.push_str(&text[copied..value_start]);
            out.push_str(REDACTED);
            copied = value_end;
            index = value_end;
            continue;
        }
        index = key_end;
    }
    out.push_str(&text[copied..]);
    out
}

/// The byte range of the value assigned after a key ending at `position`, if an assignment follows.
fn value_after(bytes: &[u8], position: usize) -> Option<(usize, usize)> {
    let at = |index: usize| bytes.get(index).copied();
    let skip_blanks = |mut index: usize| {
        while matches!(at(index), Some(b' ' | b'\t')) {
            index += 1;
        }
        index
    };
    let mut index = position;
    // The key's closing quote: `"key"`, `'key'` or `\"key\"` inside an escaped JSON string.
    if at(index) == Some(b'\\') && at(index + 1) == Some(b'"') {
        index += 2;
    } else if matches!(at(index), Some(b'"' | b'\'')) {
        index += 1;
    }
    index = skip_blanks(index);
    match at(index) {
        Some(b':' | b'=') if at(index + 1) != Some(b'=') => index += 1,
        _ => return None,
    }
    index = skip_blanks(index);

    let (start, end) = if at(index) == Some(b'\\') && at(index + 1) == Some(b'"') {
        // JSON inside a JSON string: `\\` is a backslash and `\"` a quote of the inner text; the
        // value ends at an inner quote that the inner text does not escape.
        let start = index + 2;
        let mut end = start;
        let mut inner_escape = false;
        while end < bytes.len() && bytes[end] != b'\n' {
            match (bytes[end], at(end + 1)) {
                (b'\\', Some(b'\\')) => {
                    inner_escape = !inner_escape;
                    end += 2;
                }
                (b'\\', Some(b'"')) if !inner_escape => break,
                (b'\\', Some(b'"')) => {
                    inner_escape = false;
                    end += 2;
                }
                _ => {
                    inner_escape = false;
                    end += 1;
                }
            }
        }
        (start, end)
    } else if let Some(quote @ (b'"' | b'\'')) = at(index) {
        let start = index + 1;
        let mut end = start;
        while end < bytes.len() && bytes[end] != quote && bytes[end] != b'\n' {
            end += if bytes[end] == b'\\' && end + 1 < bytes.len() && bytes[end + 1].is_ascii() { 2 } else { 1 };
        }
        (start, end.min(bytes.len()))
    } else {
        let mut start = index;
        let word_end = unquoted_end(bytes, start);
        let word = String::from_utf8_lossy(&bytes[start..word_end]).to_ascii_lowercase();
        if AUTH_SCHEMES.contains(&word.as_str()) && at(word_end) == Some(b' ') {
            start = skip_blanks(word_end);
        }
        (start, unquoted_end(bytes, start))
    };
    let value = &bytes[start..end];
    (!value.is_empty() && value != REDACTED.as_bytes()).then_some((start, end))
}

fn unquoted_end(bytes: &[u8], start: usize) -> usize {
    let mut end = start;
    while end < bytes.len() && !ends_value(bytes[end]) {
        end += 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_match_case_insensitively_and_references_do_not() {
        for key in [
            "password",
            "Password",
            "unicodePwd",
            "secret",
            "clientSecret",
            "client_secret",
            "token",
            "accessToken",
            "access_token",
            "refresh_token",
            "Authorization",
            "db_password",
            "msDS-ManagedPassword",
            "serviceAccountToken",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for key in [
            "secretUri",
            "SecretUri",
            "secret_uri",
            "secret_name",
            "secretName",
            "secretRef",
            "name",
            "msDS-ManagedPasswordInterval",
            "passwordLastSet",
            "tokenFile",
        ] {
            assert!(!is_secret_key(key), "{key}");
        }
    }

    #[test]
    fn assignments_in_text_lose_their_values() {
        let cases = [
            ("password=hunter2 user=bob", "password=<redacted> user=bob"),
            ("db_password: 'a b c'; next", "db_password: '<redacted>'; next"),
            (r#"{"token": "abc.def", "name": "x"}"#, r#"{"token": "<redacted>", "name": "x"}"#),
            (r#"{\"clientSecret\":\"s3cr\\\"et\"}"#, r#"{\"clientSecret\":\"<redacted>\"}"#),
            ("Authorization: Bearer eyJ0eXAi.x.y\r\nHost: a", "Authorization: Bearer <redacted>\r\nHost: a"),
            ("authorization=Basic dXNlcjpwdw==", "authorization=Basic <redacted>"),
            (r#""Password" : "x"  "#, r#""Password" : "<redacted>"  "#),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_assignments(input), expected, "{input}");
        }
    }

    #[test]
    fn references_comparisons_and_empty_values_are_kept() {
        for text in [
            "secretUri=https://v.vault.azure.net/secrets/GMSADomainUserCred",
            r#"{"secret_name": "GMSADomainUserCred", "SecretUri": "https://v/secrets/s"}"#,
            "if token == expected",
            "password=",
            "password: <redacted>",
            "no assignment to a password here",
            "passwordLastSet=133",
        ] {
            assert_eq!(redact_assignments(text), text);
        }
    }

    #[test]
    fn non_ascii_text_around_assignments_survives() {
        assert_eq!(redact_assignments("ü password=ä€ x ∑"), "ü password=<redacted> x ∑");
    }
}
