//! Generated passwords for the standard domain user, and their `unicodePwd` encoding.
//!
//! AD's complexity rule wants characters from three of five classes and no part of the account
//! name; a generated password has all four printable classes and is regenerated in the rare case
//! it contains the account name. Symbols that are awkward downstream (`:` separates user and
//! password in the Key Vault secret `DOMAIN\user:password`, `\` and `"` need quoting) are left out.

use gmsa::SecretString;
use rand::RngExt;
use rand::seq::IndexedRandom;

/// Length of generated passwords: far above AD's default minimum (7) and any sane policy.
pub const GENERATED_LEN: usize = 32;

const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const DIGITS: &[u8] = b"23456789";
const SYMBOLS: &[u8] = b"!#%&()*+-./<=>?@[]^_{}~";

/// A fresh random password of [`GENERATED_LEN`] characters from the thread-local CSPRNG
/// (ChaCha seeded by the OS), with at least one upper, lower, digit and symbol, that does not
/// contain `account_name` (case-insensitive) when the name has three or more characters.
pub fn generate(account_name: &str) -> SecretString {
    let mut rng = rand::rng();
    let all: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS].concat();
    loop {
        let mut chars: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS]
            .iter()
            .map(|class| *class.choose(&mut rng).expect("character classes are not empty"))
            .collect();
        while chars.len() < GENERATED_LEN {
            chars.push(*all.choose(&mut rng).expect("alphabet is not empty"));
        }
        // Fisher–Yates, so the four guaranteed classes are not always in front.
        for index in (1..chars.len()).rev() {
            chars.swap(index, rng.random_range(0..=index));
        }
        let candidate = SecretString::new(String::from_utf8(chars).expect("alphabet is ASCII"));
        if meets_complexity(candidate.expose(), account_name) {
            return candidate;
        }
    }
}

/// AD's "passwords must meet complexity requirements": three of upper, lower, digit, symbol
/// (non-alphanumeric), at least 7 characters, and not containing the account name.
pub fn meets_complexity(password: &str, account_name: &str) -> bool {
    let classes = [
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ];
    let contains_name =
        account_name.chars().count() >= 3 && password.to_lowercase().contains(&account_name.to_lowercase());
    password.chars().count() >= 7 && classes.iter().filter(|present| **present).count() >= 3 && !contains_name
}

/// Bytes that wipe themselves on drop: the `unicodePwd` value on its way to the LDAP encoder, a
/// gMSA's managed password. Debug shows only the length.
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of secret bytes.
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(bytes)
    }

    /// The bytes; only for their one destination (the LDAP modify or add, a Kerberos client).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(<redacted>, {} bytes)", self.0.len())
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        for byte in self.0.iter_mut() {
            // Volatile so the write to a buffer about to be freed is not elided.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
}

/// The `unicodePwd` value AD expects: the password in double quotes, encoded as UTF-16LE
/// ([MS-ADTS] 3.1.1.3.1.5.1). AD accepts it only over an encrypted connection.
pub fn unicode_pwd(password: &SecretString) -> SecretBytes {
    let quoted = format!("\"{}\"", password.expose());
    let bytes = quoted.encode_utf16().flat_map(u16::to_le_bytes).collect();
    // The intermediate string holds the password too: wrapping it zeroes it when dropped.
    drop(SecretString::new(quoted));
    SecretBytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_meet_complexity_and_differ() {
        let first = generate("gmsa-user");
        let second = generate("gmsa-user");
        assert_eq!(first.expose().len(), GENERATED_LEN);
        assert!(meets_complexity(first.expose(), "gmsa-user"));
        assert!(first.expose().chars().any(|c| c.is_ascii_uppercase()));
        assert!(first.expose().chars().any(|c| c.is_ascii_lowercase()));
        assert!(first.expose().chars().any(|c| c.is_ascii_digit()));
        assert!(first.expose().bytes().any(|b| SYMBOLS.contains(&b)));
        assert!(!first.expose().contains([':', '\\', '"', ' ']));
        assert_ne!(first, second);
    }

    proptest::proptest! {
        /// The Key Vault secret is `DOMAIN\\user:password` and the CCG plugin splits it at the
        /// first `\\` and the first `:`, and keeps only the low 8 bits of JSON `\\u` escapes: every
        /// generated password must be printable ASCII without `:` or `\\` (nor `"` or a space).
        #[test]
        fn generated_passwords_survive_the_ccg_plugin(name in "[a-zA-Z0-9._-]{1,20}") {
            let password = generate(&name);
            let text = password.expose();
            proptest::prop_assert_eq!(text.len(), GENERATED_LEN);
            proptest::prop_assert!(text.bytes().all(|byte| (0x21..=0x7e).contains(&byte)), "printable ASCII");
            proptest::prop_assert!(!text.contains([':', '\\', '"', ' ']));
            proptest::prop_assert!(meets_complexity(text, &name));
            let secret = format!("CONTOSO\\{name}:{text}");
            let (_, user_and_password) = secret.split_once('\\').unwrap();
            proptest::prop_assert_eq!(user_and_password.split_once(':'), Some((name.as_str(), text)));
        }
    }

    #[test]
    fn complexity_rule_matches_ad() {
        assert!(meets_complexity("Passw0rd", "bob"));
        assert!(!meets_complexity("password1", "bob"), "two classes");
        assert!(!meets_complexity("Pa1!", "bob"), "too short");
        assert!(!meets_complexity("xBoB-Passw0rd!", "bob"), "contains the account name");
        assert!(meets_complexity("Ab1!Ab1!", "ab"), "names under 3 characters do not count");
    }

    #[test]
    fn unicode_pwd_is_quoted_utf16le() {
        let encoded = unicode_pwd(&SecretString::new("Pä1!"));
        assert_eq!(encoded.expose(), [b'"', 0, b'P', 0, 0xe4, 0, b'1', 0, b'!', 0, b'"', 0]);
    }
}
