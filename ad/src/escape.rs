//! Escaping of values placed into LDAP search filters (RFC 4515) and distinguished names
//! (RFC 4514). Every value this crate puts into a filter or a DN goes through one of these
//! functions, so a name such as `*)(objectClass=*` is a literal, never filter syntax.

/// Why a value cannot be used as a DN attribute value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscapeError {
    /// An RDN value may not be empty.
    #[error("a distinguished-name value may not be empty")]
    EmptyDnValue,
}

/// Escapes a string for use as an assertion value in a search filter (RFC 4515 section 3):
/// `*` `(` `)` `\` and NUL become `\2a` `\28` `\29` `\5c` `\00`; everything else is kept as UTF-8.
pub fn filter_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '*' => escaped.push_str("\\2a"),
            '(' => escaped.push_str("\\28"),
            ')' => escaped.push_str("\\29"),
            '\\' => escaped.push_str("\\5c"),
            '\0' => escaped.push_str("\\00"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Escapes arbitrary bytes (an `objectSid`, an `objectGUID`) for a filter: every byte as `\xx`.
pub fn filter_bytes(value: &[u8]) -> String {
    value.iter().map(|byte| format!("\\{byte:02x}")).collect()
}

/// Escapes a string for use as an attribute value in a distinguished name (RFC 4514 section 2.4):
/// `"` `+` `,` `;` `<` `>` `\` and `=` are backslash-escaped, as are a leading `#` or space and a
/// trailing space; NUL becomes `\00`. An empty value is refused.
pub fn dn_value(value: &str) -> Result<String, EscapeError> {
    if value.is_empty() {
        return Err(EscapeError::EmptyDnValue);
    }
    let last = value.chars().count() - 1;
    let mut escaped = String::with_capacity(value.len() + 4);
    for (index, character) in value.chars().enumerate() {
        match character {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' | '=' => {
                escaped.push('\\');
                escaped.push(character);
            }
            '#' if index == 0 => escaped.push_str("\\#"),
            ' ' if index == 0 || index == last => escaped.push_str("\\ "),
            '\0' => escaped.push_str("\\00"),
            other => escaped.push(other),
        }
    }
    Ok(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn filter_metacharacters_become_hex_escapes() {
        assert_eq!(filter_value("*)(objectClass=*"), "\\2a\\29\\28objectClass=\\2a");
        assert_eq!(filter_value("a\\b\0c"), "a\\5cb\\00c");
        assert_eq!(filter_value("plain-name.ü"), "plain-name.ü");
    }

    #[test]
    fn binary_values_are_fully_hex_escaped() {
        assert_eq!(filter_bytes(&[0x01, 0x2a, 0xff]), "\\01\\2a\\ff");
    }

    #[test]
    fn dn_specials_leading_and_trailing_characters_are_escaped() {
        assert_eq!(dn_value("a,b+c\"d<e>f;g=h\\i").unwrap(), "a\\,b\\+c\\\"d\\<e\\>f\\;g\\=h\\\\i");
        assert_eq!(dn_value("#svc").unwrap(), "\\#svc");
        assert_eq!(dn_value("a#b").unwrap(), "a#b");
        assert_eq!(dn_value(" x ").unwrap(), "\\ x\\ ");
        assert_eq!(dn_value("nul\0").unwrap(), "nul\\00");
        assert_eq!(dn_value(""), Err(EscapeError::EmptyDnValue));
    }

    /// Undoes `filter_value`, for the property below.
    fn unescape_filter(escaped: &str) -> String {
        let mut bytes = Vec::new();
        let mut rest = escaped.as_bytes();
        while let Some((&first, tail)) = rest.split_first() {
            if first == b'\\' {
                bytes.push(u8::from_str_radix(std::str::from_utf8(&tail[..2]).unwrap(), 16).unwrap());
                rest = &tail[2..];
            } else {
                bytes.push(first);
                rest = tail;
            }
        }
        String::from_utf8(bytes).unwrap()
    }

    proptest! {
        #[test]
        fn escaped_filter_values_contain_no_filter_syntax_and_round_trip(value in "\\PC*|[*()\\\\\0=a-z]*") {
            let escaped = filter_value(&value);
            prop_assert!(!escaped.contains(['*', '(', ')', '\0']));
            prop_assert!(escaped.matches('\\').count() == escaped.matches("\\2a").count() + escaped.matches("\\28").count()
                + escaped.matches("\\29").count() + escaped.matches("\\5c").count() + escaped.matches("\\00").count());
            prop_assert_eq!(unescape_filter(&escaped), value);
        }

        #[test]
        fn escaped_dn_values_have_no_unescaped_separator(value in "[ #,+;<>=\"\\\\a-z\0]{1,12}") {
            let escaped = dn_value(&value).unwrap();
            // Every special character is preceded by a backslash that is not itself escaped.
            let mut chars = escaped.chars();
            while let Some(character) = chars.next() {
                if character == '\\' {
                    prop_assert!(chars.next().is_some());
                } else {
                    prop_assert!(!matches!(character, ',' | '+' | ';' | '<' | '>' | '=' | '"' | '\0'));
                }
            }
        }
    }
}
