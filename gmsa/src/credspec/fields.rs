//! Validated field types of a credential spec: each `parse` checks one value against the rule
//! Windows, Active Directory, Azure or Kubernetes applies to it, and keeps the text as given.
//!
//! The rules, and where they come from:
//! - **GUID** (`DomainJoinConfig.Guid`, the managed identity's object id): `8-4-4-4-12` hex digits,
//!   no braces, as `Get-ADDomain` prints `ObjectGUID` and as Azure prints object ids.
//! - **Domain SID** (`DomainJoinConfig.Sid`): `S-1-5-21-a-b-c`, the SID of the *domain*, three
//!   32-bit decimal sub-authorities after `21`, no RID (FACTS.md: Microsoft's CredentialSpec
//!   module writes the domain SID; the seed's `$GMSA_SID` placeholder is misleading).
//! - **NetBIOS domain name**: 1–15 characters (Microsoft, "Naming conventions in Active
//!   Directory"). Microsoft forbids `\ / : * ? " < > | , ~ ! @ # $ % ^ & ' . ( ) { } _` and
//!   white space in domain NetBIOS names; we accept the subset that is also DNS-safe: ASCII
//!   letters, digits and `-`, not starting or ending with `-`, not all digits.
//! - **DNS domain names** (`DnsName`, `DnsTreeName`, the Key Vault host): RFC 1123 host names,
//!   labels of 1–63 letters, digits and `-` (not at either end), at most 253 characters, at least
//!   two labels (Active Directory discourages single-label domains and CCG needs an FQDN), the last
//!   label not all digits, no trailing dot.
//! - **gMSA account name** (`MachineAccountName`, `GroupManagedServiceAccounts[].Name`): the name
//!   without the trailing `$` of its sAMAccountName. A gMSA is a computer-class object, so the
//!   15-character NetBIOS computer-name limit applies (Microsoft, "Get started with group managed
//!   service accounts": the name must be 15 characters or fewer). sAMAccountName forbids
//!   `" / \ [ ] : ; | = , + * ? < >` and `@`; we accept the DNS-compatible subset: ASCII letters,
//!   digits, `-` and `_`, not starting or ending with `-`, not all digits. A trailing `$` is
//!   rejected with its own rule because the credspec carries the bare name.
//! - **Key Vault secret URI**: `https://<vault-host>[:port]/secrets/<name>[/<version>]`; the first
//!   label of the host is the vault name (3–24 characters, letters, digits and `-`, starting with
//!   a letter, ending with a letter or digit, no `--`); the secret name is 1–127 letters, digits
//!   and `-`; a version is 32 hex digits. No query, fragment or user info.
//! - **metadata.name**: a Kubernetes DNS-1123 subdomain (≤ 253 characters, lowercase
//!   alphanumerics, `-` and `.`, each dot-separated part starting and ending alphanumeric).

use std::fmt;

/// The rule a value broke; the field it belongs to is named by [`super::CredSpecError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rule {
    /// The value is empty.
    #[error("must not be empty")]
    Empty,
    /// The value is longer than the limit.
    #[error("must be at most {max} characters, got {len}")]
    TooLong { max: usize, len: usize },
    /// The value is shorter than the limit.
    #[error("must be at least {min} characters, got {len}")]
    TooShort { min: usize, len: usize },
    /// A character outside the allowed set.
    #[error("character {found:?} is not allowed (allowed: {allowed})")]
    Character { found: char, allowed: &'static str },
    /// The value starts or ends with a character that may only appear inside it.
    #[error("must start and end with {allowed}")]
    Edge { allowed: &'static str },
    /// The value consists of digits only.
    #[error("must not consist of digits only")]
    AllDigits,
    /// A gMSA name given with the trailing `$` of its sAMAccountName.
    #[error("give the account name without the trailing '$' of its sAMAccountName")]
    TrailingDollar,
    /// A DNS name with an empty, over-long or malformed label.
    #[error("label {label:?} {problem}")]
    Label { label: String, problem: &'static str },
    /// A DNS name with a single label.
    #[error("must be a fully qualified name with at least two labels")]
    SingleLabel,
    /// The text does not have the expected overall shape.
    #[error("must have the form {expected}")]
    Shape { expected: &'static str },
    /// A SID that is well formed but not a domain SID.
    #[error(
        "must be a domain SID S-1-5-21-<a>-<b>-<c> (no RID), got a SID with {sub_authorities} sub-authorities under authority {authority}"
    )]
    NotDomainSid { authority: u64, sub_authorities: usize },
    /// A number out of range or written with leading zeros.
    #[error("number {number:?} must be a decimal without leading zeros and at most {max}")]
    Number { number: String, max: u64 },
    /// `DnsTreeName` is not `DnsName` or a parent of it.
    #[error("must equal the DNS domain name {dns_name:?} or be a parent domain of it")]
    NotTreeRoot { dns_name: String },
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// The value as given.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// A GUID in `8-4-4-4-12` hex form without braces.
    Guid
);
text_newtype!(
    /// A domain SID `S-1-5-21-a-b-c`.
    DomainSid
);
text_newtype!(
    /// A NetBIOS domain name (`CONTOSO`).
    NetBiosName
);
text_newtype!(
    /// An RFC 1123 DNS name with at least two labels (`contoso.com`).
    DnsName
);
text_newtype!(
    /// A gMSA account name without the trailing `$` (`WebApp01`).
    GmsaAccountName
);
text_newtype!(
    /// A Key Vault secret URI `https://<vault>.<suffix>[:port]/secrets/<name>[/<version>]`.
    SecretUri
);
text_newtype!(
    /// A Kubernetes object name that is a DNS-1123 subdomain.
    ObjectName
);

const HEX: &str = "hex digits 0-9 a-f A-F";
const LETTERS_DIGITS_HYPHEN: &str = "ASCII letters, digits and '-'";

impl Guid {
    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    pub fn parse(text: &str) -> Result<Self, Rule> {
        const SHAPE: Rule = Rule::Shape { expected: "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hex, no braces)" };
        let groups: Vec<&str> = text.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|group| group.len()).collect();
        if lengths != [8, 4, 4, 4, 12] {
            return Err(SHAPE);
        }
        if let Some(found) = text.chars().find(|c| *c != '-' && !c.is_ascii_hexdigit()) {
            return Err(Rule::Character { found, allowed: HEX });
        }
        Ok(Guid(text.to_string()))
    }
}

impl DomainSid {
    /// Parses a SID and checks that it is a domain SID: `S-1-5-21-a-b-c`.
    pub fn parse(text: &str) -> Result<Self, Rule> {
        const SHAPE: Rule = Rule::Shape { expected: "S-1-<authority>-<sub-authority>... (decimal numbers)" };
        let parts: Vec<&str> = text.split('-').collect();
        if parts.len() < 3 || parts[0] != "S" || parts[1] != "1" {
            return Err(SHAPE);
        }
        // The identifier authority is 48 bits; sub-authorities are 32 bits each.
        let authority = parse_decimal(parts[2], (1 << 48) - 1)?;
        let mut sub_authorities = Vec::with_capacity(parts.len() - 3);
        for part in &parts[3..] {
            sub_authorities.push(parse_decimal(part, u64::from(u32::MAX))?);
        }
        if sub_authorities.len() > 15 {
            return Err(SHAPE);
        }
        if authority != 5 || sub_authorities.len() != 4 || sub_authorities[0] != 21 {
            return Err(Rule::NotDomainSid { authority, sub_authorities: sub_authorities.len() });
        }
        Ok(DomainSid(text.to_string()))
    }
}

fn parse_decimal(text: &str, max: u64) -> Result<u64, Rule> {
    let number_rule = || Rule::Number { number: text.to_string(), max };
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit()) || (text.len() > 1 && text.starts_with('0')) {
        return Err(number_rule());
    }
    match text.parse::<u64>() {
        Ok(value) if value <= max => Ok(value),
        _ => Err(number_rule()),
    }
}

/// Checks a name made of ASCII letters, digits, `-` and the `extra` characters, with
/// alphanumeric ends, not all digits, and a length limit.
fn check_plain_name(text: &str, max: usize, extra: &[char], allowed: &'static str) -> Result<(), Rule> {
    if text.is_empty() {
        return Err(Rule::Empty);
    }
    let len = text.chars().count();
    if len > max {
        return Err(Rule::TooLong { max, len });
    }
    if let Some(found) = text.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || extra.contains(c))) {
        return Err(Rule::Character { found, allowed });
    }
    if text.starts_with('-') || text.ends_with('-') {
        return Err(Rule::Edge { allowed: "an ASCII letter or digit" });
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        return Err(Rule::AllDigits);
    }
    Ok(())
}

impl NetBiosName {
    /// Parses a NetBIOS domain name (see the module doc for the rule).
    pub fn parse(text: &str) -> Result<Self, Rule> {
        check_plain_name(text, 15, &[], LETTERS_DIGITS_HYPHEN)?;
        Ok(NetBiosName(text.to_string()))
    }
}

impl GmsaAccountName {
    /// Parses a gMSA account name given without its trailing `$`.
    pub fn parse(text: &str) -> Result<Self, Rule> {
        if text.len() > 1 && text.ends_with('$') {
            return Err(Rule::TrailingDollar);
        }
        check_plain_name(text, 15, &['_'], "ASCII letters, digits, '-' and '_'")?;
        Ok(GmsaAccountName(text.to_string()))
    }
}

impl DnsName {
    /// Parses an RFC 1123 DNS name with at least two labels.
    pub fn parse(text: &str) -> Result<Self, Rule> {
        check_dns_name(text)?;
        Ok(DnsName(text.to_string()))
    }

    /// True when `self` equals `child` or is a parent domain of it (case-insensitive).
    pub fn is_same_or_parent_of(&self, child: &DnsName) -> bool {
        let parent = self.0.to_ascii_lowercase();
        let child = child.0.to_ascii_lowercase();
        child == parent || child.ends_with(&format!(".{parent}"))
    }
}

fn check_dns_name(text: &str) -> Result<(), Rule> {
    if text.is_empty() {
        return Err(Rule::Empty);
    }
    if text.len() > 253 {
        return Err(Rule::TooLong { max: 253, len: text.len() });
    }
    let labels: Vec<&str> = text.split('.').collect();
    for label in &labels {
        let problem = if label.is_empty() {
            Some("is empty")
        } else if label.len() > 63 {
            Some("is longer than 63 characters")
        } else if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            Some("may only contain ASCII letters, digits and '-'")
        } else if label.starts_with('-') || label.ends_with('-') {
            Some("must start and end with a letter or digit")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(Rule::Label { label: label.to_string(), problem });
        }
    }
    if labels.len() < 2 {
        return Err(Rule::SingleLabel);
    }
    if labels.last().is_some_and(|top| top.chars().all(|c| c.is_ascii_digit())) {
        return Err(Rule::AllDigits);
    }
    Ok(())
}

impl SecretUri {
    /// Parses `https://<vault-host>[:port]/secrets/<name>[/<version>]`.
    pub fn parse(text: &str) -> Result<Self, Rule> {
        const SHAPE: Rule = Rule::Shape { expected: "https://<vault>.<dns-suffix>[:port]/secrets/<name>[/<version>]" };
        let rest = text.strip_prefix("https://").ok_or(SHAPE)?;
        if rest.contains(['?', '#', '@']) {
            return Err(SHAPE);
        }
        let (authority, path) = rest.split_once('/').ok_or(SHAPE)?;
        let host = match authority.split_once(':') {
            Some((host, port)) => {
                parse_decimal(port, 65_535)?;
                host
            }
            None => authority,
        };
        check_dns_name(host)?;
        let vault_name = host.split('.').next().unwrap_or_default();
        check_vault_name(vault_name)?;
        let segments: Vec<&str> = path.split('/').collect();
        match segments.as_slice() {
            ["secrets", name] => check_secret_name(name)?,
            ["secrets", name, version] => {
                check_secret_name(name)?;
                check_secret_version(version)?;
            }
            _ => return Err(SHAPE),
        }
        Ok(SecretUri(text.to_string()))
    }
}

fn check_vault_name(name: &str) -> Result<(), Rule> {
    let len = name.len();
    if len < 3 {
        return Err(Rule::TooShort { min: 3, len });
    }
    if len > 24 {
        return Err(Rule::TooLong { max: 24, len });
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) || name.ends_with('-') {
        return Err(Rule::Edge { allowed: "a letter (start) and a letter or digit (end) in the vault name" });
    }
    if name.contains("--") {
        return Err(Rule::Shape { expected: "a vault name without consecutive hyphens" });
    }
    Ok(())
}

fn check_secret_name(name: &str) -> Result<(), Rule> {
    if name.is_empty() {
        return Err(Rule::Empty);
    }
    if name.len() > 127 {
        return Err(Rule::TooLong { max: 127, len: name.len() });
    }
    if let Some(found) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
        return Err(Rule::Character { found, allowed: LETTERS_DIGITS_HYPHEN });
    }
    Ok(())
}

fn check_secret_version(version: &str) -> Result<(), Rule> {
    if version.len() != 32 {
        return Err(Rule::Shape { expected: "a secret version of 32 hex digits" });
    }
    if let Some(found) = version.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(Rule::Character { found, allowed: HEX });
    }
    Ok(())
}

impl ObjectName {
    /// Parses a Kubernetes DNS-1123 subdomain name.
    pub fn parse(text: &str) -> Result<Self, Rule> {
        if text.is_empty() {
            return Err(Rule::Empty);
        }
        if text.len() > 253 {
            return Err(Rule::TooLong { max: 253, len: text.len() });
        }
        if let Some(found) =
            text.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '.'))
        {
            return Err(Rule::Character { found, allowed: "lowercase ASCII letters, digits, '-' and '.'" });
        }
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        for part in text.split('.') {
            if !part.starts_with(alnum) || !part.ends_with(alnum) {
                return Err(Rule::Edge { allowed: "a lowercase letter or digit (each dot-separated part)" });
            }
        }
        Ok(ObjectName(text.to_string()))
    }
}
