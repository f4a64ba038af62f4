//! Tests of the redactor: each form of a known secret, the key rules on JSON, and properties
//! over arbitrary secrets and surrounding text.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use serde_json::json;

use super::*;

const CREDENTIAL: &str = r"CONTOSO\gmsa-user:Pa55:w0rd!x";
const PASSWORD: &str = "Pa55:w0rd!x";

fn mk_redactor(secrets: &[&str]) -> Redactor {
    let owned: Vec<SecretString> = secrets.iter().map(|secret| SecretString::new(*secret)).collect();
    let borrowed: Vec<&SecretString> = owned.iter().collect();
    Redactor::new(&borrowed)
}

#[test]
fn every_form_of_a_known_secret_is_replaced() {
    let redactor = mk_redactor(&[CREDENTIAL]);
    let cases = [
        format!("secret value {CREDENTIAL} end"),
        format!("data: {}", STANDARD.encode(CREDENTIAL)),
        format!("url-safe {}", URL_SAFE_NO_PAD.encode(CREDENTIAL)),
        format!(r#"{{"value":"{}"}}"#, json_escaped(CREDENTIAL)),
        format!("annotation {}", json_escaped(&json_escaped(CREDENTIAL))),
        format!("the password alone: {PASSWORD}."),
        format!("its base64 alone: {}", STANDARD.encode(PASSWORD)),
    ];
    for text in cases {
        let redacted = redactor.redact_text(&text);
        assert!(redacted.contains(REDACTED), "{text} -> {redacted}");
        assert!(!redacted.contains(PASSWORD), "{text} -> {redacted}");
        assert!(!redacted.contains("gmsa-user"), "the whole credential, in this form: {text} -> {redacted}");
        assert!(!redacted.contains(&STANDARD.encode(PASSWORD)[..8]), "{text} -> {redacted}");
    }
    assert_eq!(redactor.redact_text(&format!("a {CREDENTIAL} b")), "a <redacted> b", "the widest match wins");
}

#[test]
fn text_without_secrets_is_unchanged() {
    let redactor = mk_redactor(&[CREDENTIAL]);
    let text = "CONTOSO\\gmsa-user reads https://v.vault.azure.net/secrets/GMSADomainUserCred";
    assert_eq!(redactor.redact_text(text), text);
    assert_eq!(mk_redactor(&[]).redact_text(text), text);
    assert_eq!(mk_redactor(&[""]).redact_text(text), text, "an empty secret matches nothing");
}

#[test]
fn only_a_domain_user_credential_contributes_its_password() {
    assert_eq!(credential_password(CREDENTIAL), Some(PASSWORD));
    assert_eq!(credential_password("https://host:443/path"), None);
    assert_eq!(credential_password(r"\user:pw"), None);
    assert_eq!(credential_password(r"D\u:"), None);
}

#[test]
fn json_members_named_for_secrets_are_redacted_and_references_kept() {
    let redactor = mk_redactor(&[]);
    let mut document = json!({
        "password": "hunter2",
        "unicodePwd": "IgBQAGEAcwBzACIA",
        "ClientSecret": "abc",
        "token": {"value": "t", "expiresOn": 17, "valid": true},
        "refresh_token": ["r1", "r2"],
        "Authorization": "Bearer xyz",
        "secretUri": "https://v.vault.azure.net/secrets/s",
        "SecretUri": "https://v.vault.azure.net/secrets/s",
        "secret_name": "GMSADomainUserCred",
        "shared": {"secret": true, "accessToken": null},
        "name": "web",
    });
    redactor.redact_json(&mut document);
    assert_eq!(
        document,
        json!({
            "password": REDACTED,
            "unicodePwd": REDACTED,
            "ClientSecret": REDACTED,
            "token": {"value": REDACTED, "expiresOn": REDACTED, "valid": true},
            "refresh_token": [REDACTED, REDACTED],
            "Authorization": REDACTED,
            "secretUri": "https://v.vault.azure.net/secrets/s",
            "SecretUri": "https://v.vault.azure.net/secrets/s",
            "secret_name": "GMSADomainUserCred",
            "shared": {"secret": true, "accessToken": null},
            "name": "web",
        })
    );
}

#[test]
fn known_values_are_found_in_any_string_key_and_embedded_json() {
    let redactor = mk_redactor(&[CREDENTIAL]);
    let last_applied = json!({"stringData": {"credential": CREDENTIAL}, "note": "password=plain"}).to_string();
    let mut document = json!({
        "message": format!("retrieved {CREDENTIAL} from the vault"),
        "data": {"credential": STANDARD.encode(CREDENTIAL)},
        PASSWORD: "a key that is a secret",
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied}},
    });
    redactor.redact_json(&mut document);
    let text = document.to_string();
    assert!(!text.contains(PASSWORD) && !text.contains(&STANDARD.encode(CREDENTIAL)), "{text}");
    assert!(!text.contains("plain"), "a key rule applies inside embedded JSON: {text}");
    let annotation =
        document["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].as_str().unwrap();
    let reparsed: Value = serde_json::from_str(annotation).expect("embedded JSON stays JSON");
    assert_eq!(reparsed["stringData"]["credential"], REDACTED);
}

#[test]
fn debug_names_no_secret() {
    let redactor = mk_redactor(&[CREDENTIAL]);
    let debug = format!("{redactor:?}");
    assert!(!debug.contains(PASSWORD) && debug.starts_with("Redactor"), "{debug}");
}

#[test]
fn a_needle_formed_across_the_marker_edge_is_removed_too() {
    let redactor = mk_redactor(&[">a>"]);
    assert!(!redactor.redact_text(">a>a>").contains(">a>"));
}

proptest! {
    #[test]
    fn no_form_of_a_secret_survives_in_any_surrounding_text(
        secret in "[ -~]{8,40}",
        before in "[ -~\\n]{0,40}",
        middle in "[ -~\\n]{0,40}",
        after in "[ -~\\n]{0,40}",
    ) {
        prop_assume!(!REDACTED.contains(&secret));
        let redactor = mk_redactor(&[&secret]);
        let encoded = STANDARD.encode(&secret);
        let escaped = json_escaped(&secret);
        let text = format!("{before}{secret}{middle}{encoded}{after}{escaped}");
        let redacted = redactor.redact_text(&text);
        prop_assert!(!redacted.contains(&secret), "{:?} -> {:?}", text, redacted);
        prop_assert!(!redacted.contains(&encoded));
    }

    #[test]
    fn json_keeps_its_shape_and_loses_the_secret(
        secret in "[!-~]{8,30}",
        keys in proptest::collection::vec("[a-zA-Z_]{1,12}", 1..6),
    ) {
        prop_assume!(!REDACTED.contains(&secret));
        let redactor = mk_redactor(&[&secret]);
        let mut document = Value::Object(
            keys.iter().map(|key| (key.clone(), json!({"v": format!("x{secret}y"), "n": 1}))).collect(),
        );
        redactor.redact_json(&mut document);
        let serialized = document.to_string();
        prop_assert!(!serialized.contains(&secret) && !serialized.contains(&json_escaped(&secret)));
        let object = document.as_object().unwrap();
        prop_assert_eq!(object.len(), keys.iter().collect::<std::collections::BTreeSet<_>>().len());
    }

    #[test]
    fn text_without_a_secret_key_or_value_passes_unchanged(text in "[a-z0-9 .,\\n]{0,80}") {
        let redactor = mk_redactor(&["Zq9!Zq9!Zq9!"]);
        prop_assume!(!text.split(|c: char| !c.is_ascii_alphanumeric()).any(is_secret_key));
        prop_assert_eq!(redactor.redact_text(&text), text);
    }
}
