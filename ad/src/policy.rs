//! The domain's password policy as a rotation schedule must respect it: `maxPwdAge` on the domain
//! head, or a fine-grained policy's `msDS-MaximumPasswordAge` (the one `msDS-ResultantPSO` names
//! for a user). Both are negative intervals of 100 ns; `0` and the most negative value mean
//! "never expires".

use std::time::Duration;

/// The age an AD interval attribute allows, `None` when passwords never expire. `text` is the
/// attribute's value as LDAP returns it; garbage is `Err` with the rule.
pub fn max_age_of(text: &str) -> Result<Option<Duration>, String> {
    let value: i64 = text.trim().parse().map_err(|_| format!("{text:?} is not an integer interval"))?;
    if value == 0 || value == i64::MIN {
        return Ok(None);
    }
    // Stored negative; a positive value is not what AD writes, but it means the same magnitude.
    let hundreds_of_ns = value.unsigned_abs();
    Ok(Some(Duration::from_nanos(hundreds_of_ns.saturating_mul(100))))
}

/// The shortest of the ages that apply (the domain's and each user's fine-grained policy).
pub fn strictest(ages: impl IntoIterator<Item = Option<Duration>>) -> Option<Duration> {
    ages.into_iter().flatten().min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_decode_as_ad_stores_them() {
        // Samba's and Windows' default: 42 days.
        assert_eq!(max_age_of("-36288000000000").unwrap(), Some(Duration::from_secs(42 * 86_400)));
        assert_eq!(max_age_of("0").unwrap(), None);
        assert_eq!(max_age_of("-9223372036854775808").unwrap(), None);
        assert!(max_age_of("forty-two").is_err());
        assert_eq!(
            strictest([Some(Duration::from_secs(10)), None, Some(Duration::from_secs(5))]),
            Some(Duration::from_secs(5))
        );
        assert_eq!(strictest([None, None]), None);
    }
}
