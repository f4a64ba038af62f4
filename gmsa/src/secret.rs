//! A string that must never be printed, logged, serialized or sent on the bus.

use std::fmt;

/// A secret value (a password, the `DOMAIN\user:password` Key Vault secret).
///
/// **Invariant:** `Debug` and `Display` print `<redacted>`, and the type implements neither
/// `Serialize` nor `Clone`-into-string conversions: the only way to the bytes is [`SecretString::expose`],
/// which makes every use greppable. The buffer is overwritten with zeros on drop.
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The secret itself. Call it only where the value leaves for its one destination
    /// (an LDAPS modify, a Key Vault set), never for logging.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A copy that is also a `SecretString`.
    pub fn duplicate(&self) -> Self {
        SecretString(self.0.clone())
    }
}

/// Splits the Key Vault secret `DOMAIN\user:password` as the CCG plugin does: the domain before
/// the first `\`, the user before the first `:` after it, the password after that (which may hold
/// either character). The error is the rule broken; nothing of the value is in it.
pub fn split_credential(value: &str) -> Result<(&str, &str, &str), &'static str> {
    let (domain, rest) = value.split_once('\\').ok_or("no '\\' after the domain")?;
    let (user, password) = rest.split_once(':').ok_or("no ':' after the user")?;
    Ok((domain, user, password))
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        // SAFETY-free zeroing: overwrite the bytes in place with a valid UTF-8 sequence (NULs).
        let bytes = unsafe { self.0.as_bytes_mut() };
        for byte in bytes.iter_mut() {
            // Volatile so the compiler cannot elide the write to a buffer about to be freed.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_split_at_the_first_backslash_and_the_first_colon_after_it() {
        assert_eq!(split_credential("CONTOSO\\svc:p@ss:w\\rd"), Ok(("CONTOSO", "svc", "p@ss:w\\rd")));
        assert!(split_credential("svc:pw").is_err());
        assert!(split_credential("CONTOSO\\svc").is_err());
    }

    #[test]
    fn never_formats_the_value() {
        let secret = SecretString::new("P@ssw0rd!");
        assert!(!format!("{secret:?} {secret}").contains("P@ss"));
        assert_eq!(secret.expose(), "P@ssw0rd!");
    }
}
