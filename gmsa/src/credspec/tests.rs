//! Tests of the credential spec builder: the seed's YAML as data, one rejection per field, and
//! property tests of the field validators (valid accepted and round-tripped, mutations rejected).

use super::*;
use proptest::prelude::*;

/// The seed's `gmsa-spec.yaml` (AKS "Enable GMSA" article), verbatim except for the `CmsPlugins`
/// list, which the article indents by one space (invalid YAML) and which is indented here as the
/// windows-gmsa CRD shape requires.
const SEED_YAML: &str = r#"
apiVersion: windows.k8s.io/v1
kind: GMSACredentialSpec
metadata:
  name: aks-gmsa-spec  # This name can be changed, but it will be used as a reference in the pod spec
credspec:
  ActiveDirectoryConfig:
    GroupManagedServiceAccounts:
    - Name: $GMSA_ACCOUNT_USERNAME
      Scope: $NETBIOS_DOMAIN_NAME
    - Name: $GMSA_ACCOUNT_USERNAME
      Scope: $DNS_DOMAIN_NAME
    HostAccountConfig:
      PluginGUID: '{CCC2A336-D7F3-4818-A213-272B7924213E}'
      PortableCcgVersion: "1"
      PluginInput: "ObjectId=$MANAGED_ID;SecretUri=$SECRET_URI"  # SECRET_URI takes the form https://$akvName.vault.azure.net/secrets/$akvSecretName
  CmsPlugins:
  - ActiveDirectory
  DomainJoinConfig:
    DnsName: $DNS_DOMAIN_NAME
    DnsTreeName: $DNS_ROOT_DOMAIN_NAME
    Guid:  $AD_DOMAIN_OBJECT_GUID
    MachineAccountName: $GMSA_ACCOUNT_USERNAME
    NetBiosName: $NETBIOS_DOMAIN_NAME
    Sid: $GMSA_SID
"#;

fn mk_inputs() -> CredSpecInputs {
    CredSpecInputs {
        name: "aks-gmsa-spec".into(),
        gmsa_account: "WebApp01".into(),
        netbios_domain: "CONTOSO".into(),
        dns_domain: "contoso.com".into(),
        dns_tree_root: "contoso.com".into(),
        domain_guid: "6a7e7a3c-0b1f-4c8e-9a55-2f1d0c3b4e5f".into(),
        domain_sid: "S-1-5-21-3623811015-3361044348-30300820".into(),
        secret_uri: "https://mygmsavault.vault.azure.net/secrets/GMSADomainUserCred".into(),
        managed_identity_object_id: "0f3c2a1b-9d8e-4f7a-b6c5-d4e3f2a1b0c9".into(),
    }
}

#[test]
fn seed_example_values_produce_the_seed_yaml() {
    let inputs = mk_inputs();
    let substitutions = [
        ("$GMSA_ACCOUNT_USERNAME", inputs.gmsa_account.as_str()),
        ("$NETBIOS_DOMAIN_NAME", inputs.netbios_domain.as_str()),
        ("$DNS_DOMAIN_NAME", inputs.dns_domain.as_str()),
        ("$DNS_ROOT_DOMAIN_NAME", inputs.dns_tree_root.as_str()),
        ("$MANAGED_ID", inputs.managed_identity_object_id.as_str()),
        ("$SECRET_URI", inputs.secret_uri.as_str()),
        ("$AD_DOMAIN_OBJECT_GUID", inputs.domain_guid.as_str()),
        ("$GMSA_SID", inputs.domain_sid.as_str()),
    ];
    let mut yaml = SEED_YAML.to_string();
    for (placeholder, value) in substitutions {
        yaml = yaml.replace(placeholder, value);
    }
    let seed: Value = serde_yaml::from_str(&yaml).unwrap();
    let built = CredSpec::new(&inputs).unwrap().manifest(ApiVersion::V1);
    assert_eq!(built, seed);
}

#[test]
fn v1alpha1_manifest_differs_only_in_api_version() {
    let spec = CredSpec::new(&mk_inputs()).unwrap();
    let mut alpha = spec.manifest(ApiVersion::V1Alpha1);
    assert_eq!(alpha["apiVersion"], "windows.k8s.io/v1alpha1");
    alpha["apiVersion"] = "windows.k8s.io/v1".into();
    assert_eq!(alpha, spec.manifest(ApiVersion::V1));
}

#[test]
fn version_choice_prefers_v1_and_falls_back_only_to_v1alpha1() {
    let served = |versions: &[&str]| versions.iter().map(|v| v.to_string()).collect::<Vec<_>>();
    assert_eq!(ApiVersion::choose(&served(&["v1alpha1", "v1"])), Some(ApiVersion::V1));
    assert_eq!(ApiVersion::choose(&served(&["v1alpha1"])), Some(ApiVersion::V1Alpha1));
    assert_eq!(ApiVersion::choose(&served(&["v2beta1"])), None);
    assert_eq!(ApiVersion::choose(&[]), None);
}

#[test]
fn each_invalid_field_is_rejected_with_its_name() {
    type Mutation = fn(&mut CredSpecInputs);
    let cases: [(Mutation, CredSpecField, &str); 10] = [
        (|i| i.name = "AKS_spec".into(), CredSpecField::Name, "metadata.name"),
        (|i| i.gmsa_account = "WebApp01$".into(), CredSpecField::GmsaAccount, "MachineAccountName"),
        (|i| i.netbios_domain = "CONTOSO-CORPORATE".into(), CredSpecField::NetBiosDomain, "NetBiosName"),
        (|i| i.dns_domain = "contoso_corp.com".into(), CredSpecField::DnsDomain, "DnsName"),
        (|i| i.dns_tree_root = "fabrikam.com".into(), CredSpecField::DnsTreeRoot, "DnsTreeName"),
        (|i| i.domain_guid = "{6a7e7a3c-0b1f-4c8e-9a55-2f1d0c3b4e5f}".into(), CredSpecField::DomainGuid, "Guid"),
        (|i| i.domain_sid = "S-1-5-21-1-2-3-1104".into(), CredSpecField::DomainSid, "Sid"),
        (|i| i.secret_uri = "http://v.vault.azure.net/secrets/x".into(), CredSpecField::SecretUri, "SecretUri"),
        (|i| i.secret_uri = "https://ab.vault.azure.net/secrets/x".into(), CredSpecField::SecretUri, "SecretUri"),
        (|i| i.managed_identity_object_id = "not-a-guid".into(), CredSpecField::ObjectId, "ObjectId"),
    ];
    for (mutate, field, named) in cases {
        let mut inputs = mk_inputs();
        mutate(&mut inputs);
        let error = CredSpec::new(&inputs).unwrap_err();
        assert_eq!(error.field(), field, "{error}");
        assert!(error.to_string().contains(named), "{error} should name {named}");
    }
}

#[test]
fn sid_with_rid_is_reported_as_not_a_domain_sid() {
    let rule = DomainSid::parse("S-1-5-21-1-2-3-1104").unwrap_err();
    assert_eq!(rule, Rule::NotDomainSid { authority: 5, sub_authorities: 5 });
    assert!(matches!(DomainSid::parse("S-1-5-21-1-02-3"), Err(Rule::Number { .. })));
    assert!(matches!(DomainSid::parse("S-1-5-21-1-4294967296-3"), Err(Rule::Number { .. })));
}

#[test]
fn tree_root_may_be_a_parent_domain() {
    let mut inputs = mk_inputs();
    inputs.dns_domain = "emea.contoso.com".into();
    assert!(CredSpec::new(&inputs).is_ok());
    inputs.dns_tree_root = "ontoso.com".into();
    let error = CredSpec::new(&inputs).unwrap_err();
    assert!(matches!(error.rule(), Rule::NotTreeRoot { .. }));
}

#[test]
fn secret_uri_accepts_version_and_port_and_rejects_extras() {
    assert!(SecretUri::parse("https://my-vault.vault.azure.net/secrets/cred/0123456789abcdef0123456789ABCDEF").is_ok());
    assert!(SecretUri::parse("https://myvault.vault.localhost:8443/secrets/cred").is_ok());
    for bad in [
        "https://myvault.vault.azure.net/secrets/cred/123",
        "https://myvault.vault.azure.net/keys/cred",
        "https://myvault.vault.azure.net/secrets/cred?api-version=7.4",
        "https://my--vault.vault.azure.net/secrets/cred",
        "https://1vault.vault.azure.net/secrets/cred",
        "https://myvault.vault.azure.net/secrets/cred_name",
        "https://myvault/secrets/cred",
        "https://myvault.vault.azure.net:99999/secrets/cred",
    ] {
        assert!(SecretUri::parse(bad).is_err(), "{bad} accepted");
    }
}

fn dns_label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
}

fn dns_name() -> impl Strategy<Value = String> {
    (prop::collection::vec(dns_label(), 1..4), "[a-z][a-z0-9]{1,5}")
        .prop_map(|(labels, top)| format!("{}.{top}", labels.join(".")))
}

fn guid() -> impl Strategy<Value = String> {
    "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
}

fn valid_inputs() -> impl Strategy<Value = CredSpecInputs> {
    (
        "[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?",
        "[A-Za-z][A-Za-z0-9_-]{0,13}[A-Za-z0-9]",
        "[A-Z][A-Z0-9-]{0,13}[A-Z0-9]",
        (dns_label(), dns_name()),
        guid(),
        (any::<u32>(), any::<u32>(), any::<u32>()),
        ("[a-z][a-z0-9]{2,20}", "[A-Za-z0-9-]{1,40}"),
        guid(),
    )
        .prop_map(|(name, account, netbios, (child, root), domain_guid, (a, b, c), (vault, secret), object_id)| {
            CredSpecInputs {
                name,
                gmsa_account: account,
                netbios_domain: netbios,
                dns_domain: format!("{child}.{root}"),
                dns_tree_root: root,
                domain_guid,
                domain_sid: format!("S-1-5-21-{a}-{b}-{c}"),
                secret_uri: format!("https://{vault}.vault.azure.net/secrets/{secret}"),
                managed_identity_object_id: object_id,
            }
        })
}

proptest! {
    #[test]
    fn valid_inputs_are_accepted_and_reach_the_manifest_unchanged(inputs in valid_inputs()) {
        let manifest = CredSpec::new(&inputs).unwrap().manifest(ApiVersion::V1);
        let join = &manifest["credspec"]["DomainJoinConfig"];
        assert_eq!(&manifest["metadata"]["name"], &Value::from(inputs.name.clone()));
        assert_eq!(&join["MachineAccountName"], &Value::from(inputs.gmsa_account.clone()));
        assert_eq!(&join["NetBiosName"], &Value::from(inputs.netbios_domain.clone()));
        assert_eq!(&join["DnsName"], &Value::from(inputs.dns_domain.clone()));
        assert_eq!(&join["DnsTreeName"], &Value::from(inputs.dns_tree_root.clone()));
        assert_eq!(&join["Guid"], &Value::from(inputs.domain_guid.clone()));
        assert_eq!(&join["Sid"], &Value::from(inputs.domain_sid.clone()));
        let plugin_input = format!("ObjectId={};SecretUri={}", inputs.managed_identity_object_id, inputs.secret_uri);
        assert_eq!(&manifest["credspec"]["ActiveDirectoryConfig"]["HostAccountConfig"]["PluginInput"], &Value::from(plugin_input));
    }

    #[test]
    fn guid_round_trips_and_mutations_are_rejected(text in guid(), position in 0usize..36, junk in "[g-zG-Z{}_ ]") {
        let parsed = Guid::parse(&text).unwrap();
        assert_eq!(Guid::parse(&parsed.to_string()).unwrap(), parsed);
        let mut replaced = text.clone();
        replaced.replace_range(position..position + 1, &junk);
        assert!(Guid::parse(&replaced).is_err());
        let mut shortened = text.clone();
        shortened.remove(position);
        assert!(Guid::parse(&shortened).is_err());
    }

    #[test]
    fn domain_sid_round_trips_and_rid_or_other_authority_is_rejected(a: u32, b: u32, c: u32, rid: u32, authority in 0u64..100) {
        let text = format!("S-1-5-21-{a}-{b}-{c}");
        let parsed = DomainSid::parse(&text).unwrap();
        assert_eq!(DomainSid::parse(parsed.as_str()).unwrap(), parsed);
        let with_rid = format!("{text}-{rid}");
        assert!(matches!(DomainSid::parse(&with_rid), Err(Rule::NotDomainSid { .. })), "{}", with_rid);
        prop_assume!(authority != 5);
        let other_authority = format!("S-1-{authority}-21-{a}-{b}-{c}");
        assert!(DomainSid::parse(&other_authority).is_err());
    }

    #[test]
    fn netbios_names_over_15_or_with_forbidden_characters_are_rejected(
        name in "[A-Z][A-Z0-9-]{0,13}[A-Z0-9]",
        extra in "[A-Z0-9]{1,10}",
        forbidden in r#"[\\/:*?"<>|,~!@#$%^&'.(){}_ ]"#,
    ) {
        assert!(NetBiosName::parse(&name).is_ok());
        let long = format!("{name}{extra}");
        prop_assume!(long.len() > 15);
        assert!(matches!(NetBiosName::parse(&long), Err(Rule::TooLong { max: 15, .. })));
        let mut with_forbidden = name.clone();
        with_forbidden.insert_str(1, &forbidden);
        assert!(NetBiosName::parse(&with_forbidden).is_err(), "{}", with_forbidden);
    }

    #[test]
    fn gmsa_names_reject_dollar_length_and_forbidden_characters(
        name in "[A-Za-z][A-Za-z0-9_-]{0,13}[A-Za-z0-9]",
        forbidden in r#"["/\\\[\]:;|=,+*?<>@ .]"#,
    ) {
        assert_eq!(GmsaAccountName::parse(&name).unwrap().as_str(), name.as_str());
        assert_eq!(GmsaAccountName::parse(&format!("{name}$")), Err(Rule::TrailingDollar));
        assert!(GmsaAccountName::parse(&format!("{name}{}", "x".repeat(16 - name.len()))).is_err());
        let mut with_forbidden = name.clone();
        with_forbidden.insert_str(1, &forbidden);
        assert!(GmsaAccountName::parse(&with_forbidden).is_err(), "{}", with_forbidden);
    }

    #[test]
    fn dns_names_reject_bad_labels(name in dns_name(), bad_label in "(-[a-z]{1,5}|[a-z]{1,5}-|[a-z]{0,3}_[a-z]{0,3}|)") {
        assert!(DnsName::parse(&name).is_ok());
        let mutated = format!("{bad_label}.{name}");
        assert!(matches!(DnsName::parse(&mutated), Err(Rule::Label { .. })), "{}", mutated);
        assert!(DnsName::parse(&format!("{name}.")).is_err());
    }

    #[test]
    fn object_names_reject_uppercase_and_bad_edges(name in "[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?", upper in "[A-Z_]") {
        assert!(ObjectName::parse(&name).is_ok());
        assert!(ObjectName::parse(&format!("{name}{upper}")).is_err());
        assert!(ObjectName::parse(&format!("{name}-")).is_err());
        assert!(ObjectName::parse(&format!("{name}..{name}")).is_err());
    }

    #[test]
    fn secret_uri_round_trips_and_mutations_are_rejected(vault in "[a-z][a-z0-9]{2,20}", secret in "[A-Za-z0-9-]{1,40}", version in "[0-9a-f]{32}") {
        for text in [
            format!("https://{vault}.vault.azure.net/secrets/{secret}"),
            format!("https://{vault}.vault.azure.net/secrets/{secret}/{version}"),
        ] {
            let parsed = SecretUri::parse(&text).unwrap();
            assert_eq!(parsed.as_str(), text.as_str());
            assert!(SecretUri::parse(&text.replacen("https", "http", 1)).is_err());
            assert!(SecretUri::parse(&text.replacen("/secrets/", "/keys/", 1)).is_err());
            assert!(SecretUri::parse(&format!("{text}/extra")).is_err());
        }
        assert!(SecretUri::parse(&format!("https://{vault}x{}.vault.azure.net/secrets/{secret}", "y".repeat(24))).is_err());
    }
}
