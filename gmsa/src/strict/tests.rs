//! Tests of the strict decoder: the messages an operator sees, the shapes serde can take, and
//! property tests over the payload types fleetctl reads — good documents decode exactly as the
//! tolerant decoder does, and one unknown key injected anywhere is reported at its path.

use super::*;
use proptest::prelude::*;
use proto::command::{
    ApplyCredspec, DomainFacts, GrantIdentity, IdentityChoice, RotateCredential, ServiceAccountRef, VaultRef, Verify,
};
use serde::Deserialize;
use serde_json::json;

fn mk_apply() -> Value {
    json!({
        "spec_name": "aks-gmsa-spec",
        "gmsa_account": "WebApp01",
        "netbios_domain": "CONTOSO",
        "dns_domain": "contoso.com",
        "dns_tree_root": "contoso.com",
        "domain_guid": "6a7e7a3c-0b1f-4c8e-9a55-2f1d0c3b4e5f",
        "domain_sid": "S-1-5-21-3623811015-3361044348-30300820",
        "secret_uri": "https://mygmsavault.vault.azure.net/secrets/GMSADomainUserCred",
        "bindings": [{ "namespace": "default", "name": "default" }],
    })
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

#[test]
fn a_misspelt_field_is_refused_with_its_path_and_the_nearest_name() {
    let mut payload = mk_apply();
    let bindings = payload.as_object_mut().unwrap().remove("bindings").unwrap();
    payload["bindngs"] = bindings;
    let error = from_value::<ApplyCredspec>(payload).unwrap_err();
    assert_eq!(error.to_string(), "bindngs: unknown field; did you mean bindings?");
    assert_eq!(error.code(), "unknown_field");

    let mut payload = mk_apply();
    payload["bindings"] = json!([{ "namspace": "default", "name": "default" }]);
    let error = from_value::<ApplyCredspec>(payload).unwrap_err();
    assert_eq!(error.to_string(), "bindings[0].namspace: unknown field; did you mean namespace?");
    assert_eq!(error.path().segments().len(), 3);
}

#[test]
fn a_key_near_no_field_lists_the_fields() {
    let error = from_value::<ServiceAccountRef>(json!({"namespace": "a", "name": "b", "zzz": 1})).unwrap_err();
    assert_eq!(error.to_string(), "zzz: unknown field; expected one of namespace, name");
}

#[test]
fn wrong_types_and_missing_fields_name_their_path() {
    let mut payload = mk_apply();
    payload["bindings"][0]["name"] = json!(5);
    let error = from_value::<ApplyCredspec>(payload).unwrap_err();
    assert_eq!(error.to_string(), "bindings[0].name: invalid type: integer `5`, expected a string");
    assert_eq!(error.code(), "invalid_value");

    let mut payload = mk_apply();
    payload["bindings"] = json!([{ "namespace": "default" }]);
    assert_eq!(from_value::<ApplyCredspec>(payload).unwrap_err().to_string(), "bindings[0]: missing field `name`");

    let mut payload = mk_apply();
    payload.as_object_mut().unwrap().remove("domain_sid");
    assert_eq!(from_value::<ApplyCredspec>(payload).unwrap_err().to_string(), "missing field `domain_sid`");

    let error = from_value::<Verify>(json!({"spec_name": "s", "timeout_secs": -1})).unwrap_err();
    assert!(error.to_string().starts_with("timeout_secs: invalid value: integer `-1`"), "{error}");
    let error = from_value::<ApplyCredspec>(json!("text")).unwrap_err();
    assert!(error.path().is_root() && error.to_string().starts_with("invalid type: string"), "{error}");
}

#[test]
fn yaml_reaches_it_as_a_json_value() {
    let payload = yaml("spec_name: aks-gmsa-spec\nnamespace: web\ntimeout_secs: 30\n");
    let verify: Verify = from_value(payload).unwrap();
    assert_eq!((verify.namespace.as_str(), verify.timeout_secs, verify.image), ("web", 30, None));
    let error = from_value::<Verify>(yaml("spec_name: s\nimgae: iis\n")).unwrap_err();
    assert_eq!(error.to_string(), "imgae: unknown field; did you mean image?");
}

#[test]
fn internally_tagged_content_is_checked_against_its_re_encoding() {
    let grant = |identity: Value| {
        json!({
            "vault": {"subscription_id": "00000000-0000-0000-0000-000000000001", "resource_group": "rg", "name": "kv1"},
            "identity": identity,
        })
    };
    let decoded: GrantIdentity =
        from_value(grant(json!({"type": "user-assigned", "resource_group": "rg", "name": "mi-gmsa"}))).unwrap();
    assert_eq!(decoded.identity, IdentityChoice::UserAssigned { resource_group: "rg".into(), name: "mi-gmsa".into() });
    let error =
        from_value::<GrantIdentity>(grant(json!({"type": "user-assigned", "resource_group": "rg", "nmae": "mi"})))
            .unwrap_err();
    assert_eq!(error.to_string(), "identity: missing field `name`");
    let error = from_value::<GrantIdentity>(grant(
        json!({"type": "user-assigned", "resource_group": "rg", "name": "mi", "nam": 1}),
    ))
    .unwrap_err();
    assert_eq!(error.to_string(), "identity.nam: unknown field; did you mean name?");
    let error = from_value::<GrantIdentity>(grant(json!({"type": "kubelet", "name": "mi"}))).unwrap_err();
    assert_eq!(error.to_string(), "identity.name: unknown field; expected one of type");
    // A misspelt variant decodes as the wire's tolerant `Unknown` (so a newer coordinator's kinds
    // never break a decode); the shared validator then refuses it before anything is sent.
    let decoded = from_value::<GrantIdentity>(grant(json!({"type": "kubelett"}))).unwrap();
    assert_eq!(decoded.identity, proto::command::IdentityChoice::Unknown);
    assert_eq!(decoded.validate().unwrap_err().field, "payload.identity.type");
}

/// Shapes the payload types do not use today, so a type that starts using them stays strict.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum External {
    Plain,
    Wrapped(u32),
    Pair(u32, String),
    Shaped { size: u32 },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Shapes {
    #[serde(default)]
    choices: Vec<External>,
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pair: Option<(u32, String)>,
    #[serde(default)]
    free: Value,
}

#[test]
fn externally_tagged_enums_maps_tuples_and_free_values_decode_and_stay_strict() {
    let document = json!({
        "choices": ["plain", {"wrapped": 3}, {"pair": [1, "a"]}, {"shaped": {"size": 2}}],
        "labels": {"env": "prod", "anything": "goes"},
        "pair": [7, "b"],
        "free": {"any": {"thing": [1, 2]}},
    });
    let strict: Shapes = from_value(document.clone()).unwrap();
    assert_eq!(strict, serde_json::from_value::<Shapes>(document).unwrap());

    let error = from_value::<Shapes>(json!({"choices": [{"shaped": {"size": 2, "sise": 3}}]})).unwrap_err();
    assert_eq!(error.to_string(), "choices[0].shaped.sise: unknown field; did you mean size?");
    let error = from_value::<Shapes>(json!({"choices": [{"plain": 1, "wrapped": 2}]})).unwrap_err();
    assert!(error.to_string().starts_with("choices[0]: invalid value: map"), "{error}");
    let error = from_value::<Shapes>(json!({"pair": [1, "a", 3]})).unwrap_err();
    assert!(error.to_string().starts_with("pair: invalid length 3"), "{error}");
    let error = from_value::<Shapes>(json!({"choices": ["wrapped"]})).unwrap_err();
    assert!(error.to_string().starts_with("choices[0]: invalid type: unit variant"), "{error}");
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Inner {
    size: u32,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Flattened {
    label: String,
    #[serde(flatten)]
    inner: Inner,
}

#[test]
fn flattened_fields_are_checked_against_the_re_encoding() {
    let document = json!({"label": "n", "size": 1});
    assert_eq!(from_value::<Flattened>(document).unwrap(), Flattened { label: "n".into(), inner: Inner { size: 1 } });
    let error = from_value::<Flattened>(json!({"label": "n", "size": 1, "sise": 2})).unwrap_err();
    assert_eq!(error.to_string(), "sise: unknown field; did you mean size?");
}

// ---- properties over the payload types fleetctl reads ------------------------------------------

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn binding() -> impl Strategy<Value = ServiceAccountRef> {
    (text(), text()).prop_map(|(namespace, name)| ServiceAccountRef { namespace, name })
}

fn apply_credspec() -> impl Strategy<Value = ApplyCredspec> {
    (
        (text(), text(), text(), text(), text()),
        (text(), text(), text(), proptest::option::of(text())),
        (proptest::collection::vec(binding(), 0..4), text()),
    )
        .prop_map(
            |(
                (spec_name, gmsa_account, netbios_domain, dns_domain, dns_tree_root),
                (domain_guid, domain_sid, secret_uri, identity_object_id),
                (bindings, owner),
            )| ApplyCredspec {
                spec_name,
                gmsa_account,
                netbios_domain,
                dns_domain,
                dns_tree_root,
                domain_guid,
                domain_sid,
                secret_uri,
                identity_object_id,
                bindings,
                owner,
                mode: proto::Mode::Apply,
            },
        )
}

fn vault() -> impl Strategy<Value = VaultRef> {
    (text(), text(), text()).prop_map(|(subscription_id, resource_group, name)| VaultRef {
        subscription_id,
        resource_group,
        name,
    })
}

fn grant_identity() -> impl Strategy<Value = GrantIdentity> {
    let identity = prop_oneof![
        Just(IdentityChoice::Kubelet),
        (text(), text()).prop_map(|(resource_group, name)| IdentityChoice::UserAssigned { resource_group, name }),
    ];
    (vault(), text(), identity).prop_map(|(vault, secret_name, identity)| GrantIdentity {
        vault,
        secret_name,
        identity,
        mode: proto::Mode::Apply,
    })
}

fn rotate_credential() -> impl Strategy<Value = RotateCredential> {
    (vault(), text(), text()).prop_map(|(vault, secret_name, secret_version)| RotateCredential {
        vault,
        secret_name,
        secret_version,
        spec_name: None,
        run_workload: false,
        timeout_secs: 600,
    })
}

fn verify() -> impl Strategy<Value = Verify> {
    (text(), text(), proptest::option::of(text()), any::<u32>())
        .prop_map(|(spec_name, namespace, image, timeout_secs)| Verify { spec_name, namespace, image, timeout_secs })
}

fn domain_facts() -> impl Strategy<Value = DomainFacts> {
    (text(), text(), text(), text(), text(), text()).prop_map(
        |(gmsa_account, netbios_domain, dns_domain, dns_tree_root, domain_guid, domain_sid)| DomainFacts {
            gmsa_account,
            netbios_domain,
            dns_domain,
            dns_tree_root,
            domain_guid,
            domain_sid,
        },
    )
}

/// A good document decodes strictly, as JSON and as YAML, to what the tolerant decoders give.
fn round_trips<T>(payload: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + fmt::Debug,
{
    let value = serde_json::to_value(payload).unwrap();
    let strict: T = from_value(value.clone()).map_err(|error| TestCaseError::fail(error.to_string()))?;
    prop_assert_eq!(&strict, &serde_json::from_value::<T>(value).unwrap());
    prop_assert_eq!(&strict, payload);
    let text = serde_yaml::to_string(payload).unwrap();
    let strict_yaml: T = from_value(serde_yaml::from_str::<Value>(&text).unwrap())
        .map_err(|error| TestCaseError::fail(error.to_string()))?;
    prop_assert_eq!(&strict_yaml, &serde_yaml::from_str::<T>(&text).unwrap());
    Ok(())
}

/// Every object in `value`, by path.
fn objects(value: &Value, path: Path, found: &mut Vec<Path>) {
    match value {
        Value::Object(map) => {
            found.push(path.clone());
            for (key, child) in map {
                objects(child, path.key(key), found);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                objects(child, path.index(index), found);
            }
        }
        _ => {}
    }
}

fn object_at<'v>(value: &'v mut Value, path: &Path) -> &'v mut serde_json::Map<String, Value> {
    let mut here = value;
    for segment in path.segments() {
        here = match segment {
            Segment::Key(key) => &mut here[key.as_str()],
            Segment::Index(index) => &mut here[*index],
        };
    }
    here.as_object_mut().unwrap()
}

/// One unknown key injected into any object of the encoded payload is reported at its path.
fn injected_key_is_found<T>(payload: &T, pick: prop::sample::Index, key: &str, junk: Value) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + fmt::Debug,
{
    let mut value = serde_json::to_value(payload).unwrap();
    let mut found = Vec::new();
    objects(&value, Path::root(), &mut found);
    let target = pick.get(&found).clone();
    object_at(&mut value, &target).insert(key.to_string(), junk);
    match from_value::<T>(value) {
        Err(StrictError::UnknownField { path, .. }) => prop_assert_eq!(path, target.key(key)),
        other => prop_assert!(false, "expected unknown field {}.{key}, got {other:?}", target),
    }
    Ok(())
}

fn unknown_key() -> impl Strategy<Value = String> {
    // No payload field starts with "zz".
    "zz[a-z_]{0,8}"
}

fn junk() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        text().prop_map(Value::from),
        Just(json!({"nested": [1, "two"]})),
        Just(json!([])),
    ]
}

proptest! {
    #[test]
    fn good_payloads_decode_as_the_tolerant_decoder_does(
        apply in apply_credspec(),
        grant in grant_identity(),
        rotate in rotate_credential(),
        verify in verify(),
        facts in domain_facts(),
    ) {
        round_trips(&apply)?;
        round_trips(&grant)?;
        round_trips(&rotate)?;
        round_trips(&verify)?;
        round_trips(&facts)?;
    }

    #[test]
    fn an_unknown_key_anywhere_is_reported_at_its_path(
        apply in apply_credspec(),
        grant in grant_identity(),
        verify in verify(),
        facts in domain_facts(),
        pick in any::<prop::sample::Index>(),
        key in unknown_key(),
        junk in junk(),
    ) {
        injected_key_is_found(&apply, pick, &key, junk.clone())?;
        injected_key_is_found(&grant, pick, &key, junk.clone())?;
        injected_key_is_found(&verify, pick, &key, junk.clone())?;
        injected_key_is_found(&facts, pick, &key, junk)?;
    }
}

// Fuzzing the operator-file path (YAML text → value → strict decode → the shared validators):
// arbitrary text, and the example rollout file with one byte changed, never panic; whatever
// decodes, validates or is refused with a field named. PROPTEST_CASES raises the count.
fn example_rollout() -> String {
    include_str!("../../../deploy/rollout.example.yaml").to_string()
}

fn operator_file_path(text: &str) {
    let Ok(value) = serde_yaml::from_str::<serde_json::Value>(text) else { return };
    if let Ok(file) = from_value::<proto::rollout::RolloutFile>(value.clone()) {
        let _ = crate::rollout::validate(&file);
    }
    if let Ok(payload) = from_value::<ApplyCredspec>(value.clone()) {
        let _ = crate::validate::command(&proto::Command::ApplyCredspec(payload));
    }
    if let Err(error) = from_value::<GrantIdentity>(value) {
        assert!(!error.to_string().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_operator_files_arbitrary_text(text in "\\PC{0,400}") {
        operator_file_path(&text);
    }

    #[test]
    fn fuzz_operator_files_mutated_rollout(at in any::<prop::sample::Index>(), byte in 0x20u8..0x7f) {
        let mut bytes = example_rollout().into_bytes();
        let index = at.index(bytes.len());
        bytes[index] = byte;
        operator_file_path(&String::from_utf8_lossy(&bytes));
    }
}
