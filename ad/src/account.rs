//! Account names (`sAMAccountName`) as operators type them, validated before any LDAP traffic.
//!
//! AD forbids `" / \ [ ] : ; | = , + * ? < >` and `@` in `sAMAccountName`, limits it to 20
//! characters, and a gMSA's name is a computer name: at most 15 characters before its `$`.
//! Refusing such names early turns an injection attempt (`*)(objectClass=*`) into a typed error;
//! the values that remain legal but matter to LDAP — `(`, `)`, `#`, spaces — are still escaped
//! by [`crate::escape`] wherever they are used.

use std::fmt;

/// Characters AD does not allow in `sAMAccountName` (plus `@`, which would make it a UPN).
const FORBIDDEN: &[char] = &['"', '/', '\\', '[', ']', ':', ';', '|', '=', ',', '+', '*', '?', '<', '>', '@'];
/// `sAMAccountName` length limit for users ([MS-ADTS] 3.1.1.5.2.1 / the SAM's 20-character rule).
const MAX_USER_LEN: usize = 20;
/// A gMSA is a computer account: its NetBIOS name is at most 15 characters (without the `$`).
pub const MAX_GMSA_LEN: usize = 15;

/// Why a name cannot be an account name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or only dots and spaces.
    #[error("account name '{0}' is empty or only dots and spaces")]
    Blank(String),
    /// Longer than AD allows.
    #[error("account name '{name}' has {len} characters, at most {max} are allowed")]
    TooLong { name: String, len: usize, max: usize },
    /// Contains a character AD forbids in sAMAccountName, or a control character.
    #[error("account name '{name}' contains {character:?}, which sAMAccountName does not allow")]
    ForbiddenCharacter { name: String, character: char },
}

/// A validated `sAMAccountName` without a trailing `$` (the directory adds it for gMSAs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountName(String);

impl AccountName {
    /// Validates a user or group name (at most 20 characters).
    pub fn new(name: impl Into<String>) -> Result<AccountName, NameError> {
        AccountName::with_limit(name.into(), MAX_USER_LEN)
    }

    /// Validates a gMSA name: a trailing `$` is accepted and removed; at most 15 characters remain.
    pub fn gmsa(name: impl Into<String>) -> Result<AccountName, NameError> {
        let name = name.into();
        let bare = name.strip_suffix('$').unwrap_or(&name).to_string();
        AccountName::with_limit(bare, MAX_GMSA_LEN)
    }

    fn with_limit(name: String, max: usize) -> Result<AccountName, NameError> {
        if name.chars().all(|c| c == '.' || c == ' ') {
            return Err(NameError::Blank(name));
        }
        if let Some(character) = name.chars().find(|c| FORBIDDEN.contains(c) || c.is_control()) {
            return Err(NameError::ForbiddenCharacter { name, character });
        }
        let len = name.chars().count();
        if len > max {
            return Err(NameError::TooLong { name, len, max });
        }
        Ok(AccountName(name))
    }

    /// The name as given (without `$`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `sAMAccountName` of a gMSA with this name: the name followed by `$`.
    pub fn machine_account(&self) -> String {
        format!("{}$", self.0)
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_ldap_significant_but_legal_names() {
        for name in ["gmsa-user", "svc.web_01", "o(k)#1", "John Smith"] {
            assert_eq!(AccountName::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn refuses_filter_injection_and_forbidden_characters() {
        let error = AccountName::new("*)(objectClass=*").unwrap_err();
        assert!(matches!(error, NameError::ForbiddenCharacter { character: '*', .. }), "{error}");
        for name in ["a,b", "a=b", "a\\b", "a\0b", "user@contoso", "a\"b", "a<b", "a;b", "a+b"] {
            assert!(AccountName::new(name).is_err(), "{name:?}");
        }
        assert!(matches!(AccountName::new(" . "), Err(NameError::Blank(_))));
    }

    #[test]
    fn gmsa_names_drop_the_dollar_and_fit_netbios() {
        let gmsa = AccountName::gmsa("webgmsa$").unwrap();
        assert_eq!(gmsa.as_str(), "webgmsa");
        assert_eq!(gmsa.machine_account(), "webgmsa$");
        assert!(matches!(AccountName::gmsa("a-very-long-gmsa-name"), Err(NameError::TooLong { max: 15, .. })));
        assert!(AccountName::new("twenty-characters-ok").is_ok());
        assert!(AccountName::new("twenty-one-characters").is_err());
    }
}
