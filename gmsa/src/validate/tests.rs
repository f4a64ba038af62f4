//! Tests of the one validator: a good payload of each kind passes, and each bad value an operator
//! could write is refused naming its payload field — the same answer fleetctl and the agent give.

use super::*;
use proto::command::{CheckDcConnectivity, IdentityChoice, ServiceAccountRef, SharedDeletes, VaultRef};

fn mk_apply() -> ApplyCredspec {
    ApplyCredspec {
        spec_name: "aks-gmsa-spec".into(),
        gmsa_account: "WebApp01".into(),
        netbios_domain: "CONTOSO".into(),
        dns_domain: "contoso.com".into(),
        dns_tree_root: "contoso.com".into(),
        domain_guid: "6a7e7a3c-0b1f-4c8e-9a55-2f1d0c3b4e5f".into(),
        domain_sid: "S-1-5-21-3623811015-3361044348-30300820".into(),
        secret_uri: "https://mygmsavault.vault.azure.net/secrets/GMSADomainUserCred".into(),
        identity_object_id: None,
        bindings: vec![ServiceAccountRef { namespace: "default".into(), name: "default".into() }],
        owner: "default".into(),
        mode: proto::Mode::Apply,
    }
}

fn mk_vault() -> VaultRef {
    VaultRef {
        subscription_id: "00000000-0000-0000-0000-000000000001".into(),
        resource_group: "rg-gmsa".into(),
        name: "mygmsavault".into(),
    }
}

fn mk_facts() -> DomainFacts {
    DomainFacts {
        gmsa_account: "WebApp01".into(),
        netbios_domain: "CONTOSO".into(),
        dns_domain: "eu.contoso.com".into(),
        dns_tree_root: "contoso.com".into(),
        domain_guid: "6a7e7a3c-0b1f-4c8e-9a55-2f1d0c3b4e5f".into(),
        domain_sid: "S-1-5-21-3623811015-3361044348-30300820".into(),
    }
}

/// The field the validator names for `payload`.
fn refused(payload: Command) -> ValidationError {
    command(&payload).expect_err("refused")
}

#[test]
fn good_payloads_pass() {
    let mut apply = mk_apply();
    command(&Command::ApplyCredspec(apply.clone())).unwrap();
    apply.identity_object_id = Some("0f3c2a1b-9d8e-4f7a-b6c5-d4e3f2a1b0c9".into());
    command(&Command::ApplyCredspec(apply)).unwrap();
    let verify = Verify { spec_name: "aks-gmsa-spec".into(), namespace: "web".into(), image: None, timeout_secs: 60 };
    command(&Command::Verify(verify)).unwrap();
    let validate = ValidateCredspec {
        spec_name: "aks-gmsa-spec".into(),
        expected: mk_facts(),
        vault: mk_vault(),
        run_workload: false,
        timeout_secs: 600,
    };
    command(&Command::ValidateCredspec(validate)).unwrap();
    let check = CheckDcConnectivity {
        dns_server: "10.1.0.4".into(),
        domain: "contoso.com".into(),
        adws_optional: false,
        timeout_secs: 3,
    };
    command(&Command::CheckDcConnectivity(check)).unwrap();
}

#[test]
fn each_bad_apply_credspec_value_names_its_field() {
    type Mutation = fn(&mut ApplyCredspec);
    let cases: Vec<(Mutation, &str)> = vec![
        (|p| p.spec_name = "a.b*".into(), "payload.spec_name"),
        (|p| p.spec_name = "a".repeat(250), "payload.spec_name"),
        (|p| p.bindings[0].namespace = "kube system".into(), "payload.bindings[0].namespace"),
        (|p| p.bindings[0].name = "Default".into(), "payload.bindings[0].name"),
        (|p| p.secret_uri = "http://mygmsavault.vault.azure.net/secrets/x".into(), "payload.secret_uri"),
        (|p| p.domain_sid = "S-1-5-21-1-2".into(), "payload.domain_sid"),
        (|p| p.netbios_domain = "CONTOSOCONTOSO123".into(), "payload.netbios_domain"),
        (|p| p.gmsa_account = "WebApp01$".into(), "payload.gmsa_account"),
        (|p| p.dns_tree_root = "fabrikam.com".into(), "payload.dns_tree_root"),
        (|p| p.domain_guid = "{6a7e7a3c-0b1f-4c8e-9a55-2f1d0c3b4e5f}".into(), "payload.domain_guid"),
        (|p| p.identity_object_id = Some("me".into()), "payload.identity_object_id"),
        (|p| p.owner = "-bad".into(), "payload.owner"),
        (|p| p.spec_name = String::new(), "payload.spec_name"),
    ];
    for (mutate, field) in cases {
        let mut payload = mk_apply();
        mutate(&mut payload);
        let error = refused(Command::ApplyCredspec(payload.clone()));
        assert_eq!(error.field, field, "{payload:?}: {error}");
    }
    let mut payload = mk_apply();
    payload.bindings[0].namespace = "kube system".into();
    let error = refused(Command::ApplyCredspec(payload)).to_string();
    assert!(error.starts_with("payload.bindings[0].namespace: ") && error.contains("DNS-1123 label"), "{error}");
    let mut payload = mk_apply();
    payload.netbios_domain = "A".repeat(17);
    let error = refused(Command::ApplyCredspec(payload)).to_string();
    assert!(error.contains("at most 15 characters, got 17"), "{error}");
}

#[test]
fn the_other_kinds_check_their_kubernetes_and_ad_names() {
    let verify = Verify { spec_name: "s".into(), namespace: "My NS".into(), image: None, timeout_secs: 60 };
    assert_eq!(refused(Command::Verify(verify)).field, "payload.namespace");
    let mut facts = mk_facts();
    facts.domain_sid = "S-1-5-32-544".into();
    let validate = ValidateCredspec {
        spec_name: "aks-gmsa-spec".into(),
        expected: facts,
        vault: mk_vault(),
        run_workload: false,
        timeout_secs: 600,
    };
    assert_eq!(refused(Command::ValidateCredspec(validate)).field, "payload.expected.domain_sid");
    let mut facts = mk_facts();
    facts.dns_tree_root = "fabrikam.com".into();
    let validate = ValidateCredspec {
        spec_name: "aks-gmsa-spec".into(),
        expected: facts,
        vault: mk_vault(),
        run_workload: false,
        timeout_secs: 600,
    };
    assert_eq!(refused(Command::ValidateCredspec(validate)).field, "payload.expected.dns_tree_root");
    let teardown = Teardown {
        spec_name: "aks-gmsa-spec".into(),
        owner: "web app".into(),
        vault: mk_vault(),
        secret_name: "GMSADomainUserCred".into(),
        identity: IdentityChoice::Kubelet,
        disable_gmsa: true,
        delete: SharedDeletes::default(),
        mode: proto::Mode::DryRun,
    };
    assert_eq!(refused(Command::Teardown(teardown)).field, "payload.owner");
    let diagnostics = CollectDiagnostics { spec_name: "Spec".into(), owner: "default".into(), recent_results: 5 };
    assert_eq!(refused(Command::CollectDiagnostics(diagnostics)).field, "payload.spec_name");
}

#[test]
fn proto_rules_come_first_and_stay_whole() {
    let mut payload = mk_apply();
    payload.bindings[0].name = String::new();
    assert_eq!(refused(Command::ApplyCredspec(payload)).field, "payload.bindings[0]");
}
