use super::*;
use serde_json::json;

fn mk_file() -> RolloutFile {
    serde_json::from_value(json!({
        "name": "gmsa-prod",
        "setup": {
            "dns_server": "10.1.0.4",
            "root_domain": "contoso.com",
            "vault": {
                "subscription_id": "00000000-0000-0000-0000-000000000001",
                "resource_group": "rg-gmsa",
                "name": "contosoGmsaVault"
            },
            "identity": {"type": "kubelet"},
            "credspec": {"spec_name": "aks-gmsa-spec", "gmsa_account": "WebApp01"}
        },
        "overrides": [{"selector": "region=eu", "set": {"dns_server": "10.2.0.4"}}],
        "strategy": {
            "stages": [
                {"name": "canary", "count": 1, "approval_after": true},
                {"name": "wave-1", "percent": 50, "max_concurrency": "25%", "failure_budget": 1},
                {"name": "rest", "max_concurrency": 10, "failure_budget": "5%"}
            ]
        }
    }))
    .unwrap()
}

#[test]
fn a_minimal_file_gets_its_defaults() {
    let file = mk_file();
    assert_eq!(file.schema, SchemaVersion::CURRENT);
    assert_eq!(file.setup.secret_name, "GMSADomainUserCred");
    assert!(file.setup.validate && !file.setup.run_workload);
    assert_eq!(file.setup.credspec.owner, "default");
    let canary = &file.strategy.stages[0];
    assert_eq!((canary.max_concurrency, canary.failure_budget), (Amount::Count(1), Amount::Count(0)));
    assert_eq!(canary.cluster_deadline_secs, 3600);
    assert_eq!(file.strategy.arm_budget, ArmBudget { burst: 50, per_sec: 2 });
    assert_eq!(file.strategy.stages[1].max_concurrency, Amount::Percent(25));
    assert_eq!(file.strategy.stages[2].failure_budget, Amount::Percent(5));
    file.validate().unwrap();
}

#[test]
fn amounts_are_numbers_or_percent_strings() {
    assert_eq!(serde_json::to_value(Amount::Count(3)).unwrap(), json!(3));
    assert_eq!(serde_json::to_value(Amount::Percent(25)).unwrap(), json!("25%"));
    assert_eq!(serde_json::from_value::<Amount>(json!("7")).unwrap(), Amount::Count(7));
    assert_eq!(serde_json::from_value::<Amount>(json!(" 10 %")).unwrap(), Amount::Percent(10));
    for bad in [json!(-1), json!("ten"), json!("%"), json!(1.5), json!(5_000_000_000u64)] {
        assert!(serde_json::from_value::<Amount>(bad.clone()).is_err(), "{bad}");
    }
    assert_eq!(Amount::Percent(25).of_ceil(5), 2);
    assert_eq!(Amount::Percent(10).of_floor(5), 0);
    assert_eq!(Amount::Count(3).of_floor(1), 3);
}

#[test]
fn unknown_fields_are_tolerated_on_the_wire() {
    let mut value = serde_json::to_value(mk_file()).unwrap();
    value["from_a_newer_writer"] = json!(true);
    value["strategy"]["stages"][0]["new_knob"] = json!("x");
    let file: RolloutFile = serde_json::from_value(value).unwrap();
    assert_eq!(file, mk_file());
}

fn mk_central(domain_user: &str) -> CentralSetup {
    CentralSetup {
        domain_user: domain_user.into(),
        standby_user: None,
        gmsa_dns_host_name: None,
        gmsa_password_interval_days: 30,
        vault_create: None,
        reset_existing_user_password: false,
    }
}

#[test]
fn a_central_section_is_optional_and_gets_its_defaults() {
    assert_eq!(mk_file().setup.central, None);
    let setup: GmsaSetup = serde_json::from_value(json!({
        "vault": {"subscription_id": "s", "resource_group": "rg", "name": "kv1"},
        "identity": {"type": "kubelet"},
        "credspec": {"spec_name": "spec", "gmsa_account": "WebApp01"},
        "central": {"domain_user": "gmsa-user", "vault_create": {"location": "westeurope"}, "later": 1}
    }))
    .unwrap();
    let central = setup.central.unwrap();
    assert_eq!(central.gmsa_password_interval_days, 30);
    assert!(!central.reset_existing_user_password);
    assert_eq!(central.vault_create.unwrap().location, "westeurope");
}

/// A change that makes `mk_file` invalid.
type Breakage = Box<dyn FnOnce(&mut RolloutFile)>;

fn error_of(change: impl FnOnce(&mut RolloutFile)) -> String {
    let mut file = mk_file();
    change(&mut file);
    file.validate().unwrap_err().to_string()
}

#[test]
fn each_rule_names_its_field() {
    let cases: Vec<(Breakage, &str)> = vec![
        (
            Box::new(|file| file.overrides[0].set.dns_server = Some("dc1".into())),
            "overrides[0].set.dns_server: not an IPv4 address",
        ),
        (
            Box::new(|file| file.strategy.stages[1].max_concurrency = Amount::Count(0)),
            "strategy.stages[1].max_concurrency: must be at least 1",
        ),
        (
            Box::new(|file| file.strategy.stages[1].max_concurrency = Amount::Percent(0)),
            "strategy.stages[1].max_concurrency: must be at least 1",
        ),
        (
            Box::new(|file| file.strategy.stages[2].failure_budget = Amount::Percent(101)),
            "strategy.stages[2].failure_budget: must be at most 100%",
        ),
        (Box::new(|file| file.strategy.stages[1].percent = Some(150)), "strategy.stages[1].percent: must be 1-100"),
        (Box::new(|file| file.strategy.stages[0].count = Some(0)), "strategy.stages[0].count: must be at least 1"),
        (
            Box::new(|file| file.strategy.stages[0].percent = Some(10)),
            "strategy.stages[0].count, strategy.stages[0].percent: give one or the other",
        ),
        (
            Box::new(|file| file.strategy.stages[0].cluster_deadline_secs = 0),
            "strategy.stages[0].cluster_deadline_secs: must be at least 1 second",
        ),
        (
            Box::new(|file| file.strategy.stages[0].cluster_deadline_secs = crate::control::MAX_DEADLINE_SECS + 1),
            "strategy.stages[0].cluster_deadline_secs: must be at most",
        ),
        (
            Box::new(|file| file.strategy.stages[2].name = "canary".into()),
            "strategy.stages[2].name: \"canary\" is already",
        ),
        (Box::new(|file| file.strategy.stages.clear()), "strategy.stages: must have at least one stage"),
        (Box::new(|file| file.strategy.arm_budget.burst = 201), "strategy.arm_budget.burst: must be 1-200"),
        (Box::new(|file| file.strategy.arm_budget.per_sec = 0), "strategy.arm_budget.per_sec: must be 1-10"),
        (
            Box::new(|file| {
                file.strategy.maintenance_windows.push(MaintenanceWindow {
                    selector: String::new(),
                    cron: "* * * * *".into(),
                    duration_secs: 0,
                })
            }),
            "strategy.maintenance_windows[0].duration_secs: must be 1-",
        ),
        (Box::new(|file| file.setup.root_domain = None), "setup.dns_server, setup.root_domain: must be given together"),
        (Box::new(|file| file.setup.vault.name = "9x".into()), "setup.vault.name: must be"),
        (
            Box::new(|file| file.setup.credspec.gmsa_account = " ".into()),
            "setup.credspec.gmsa_account: must not be empty",
        ),
        (Box::new(|file| file.schema = "2.0".parse().unwrap()), "schema: schema 2.0 is not supported"),
        (
            Box::new(|file| file.setup.central = Some(mk_central("a*b"))),
            "setup.central.domain_user: must not contain '*'",
        ),
        (
            Box::new(|file| file.setup.central = Some(mk_central("twenty-one-characters"))),
            "setup.central.domain_user: must be 1-20 characters",
        ),
        (
            Box::new(|file| {
                let mut central = mk_central("gmsa-user");
                central.gmsa_dns_host_name = Some("webapp01".into());
                file.setup.central = Some(central)
            }),
            "setup.central.gmsa_dns_host_name: \"webapp01\" is not a DNS name",
        ),
        (
            Box::new(|file| {
                let mut central = mk_central("gmsa-user");
                central.gmsa_password_interval_days = 0;
                file.setup.central = Some(central)
            }),
            "setup.central.gmsa_password_interval_days: must be 1-3650",
        ),
        (
            Box::new(|file| {
                let mut central = mk_central("gmsa-user");
                central.vault_create = Some(VaultCreate { location: "west europe".into() });
                file.setup.central = Some(central)
            }),
            "setup.central.vault_create.location: must be an Azure region name",
        ),
    ];
    for (change, expected) in cases {
        let error = error_of(change);
        assert!(error.starts_with(expected), "{error:?} should start with {expected:?}");
    }
}

#[test]
fn overrides_apply_only_the_fields_they_set() {
    let file = mk_file();
    let setup = file.setup.with(&file.overrides[0].set);
    assert_eq!(setup.dns_server.as_deref(), Some("10.2.0.4"));
    assert_eq!(setup.root_domain, file.setup.root_domain);
    assert_eq!(setup.vault, file.setup.vault);
}
