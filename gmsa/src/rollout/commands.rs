//! From a cluster's effective setup to the command of one rollout step: what `enable-gmsa`,
//! `grant-identity`, `apply-credspec`, `validate-credspec` and `verify` carry for that cluster.
//! Pure; the driver calls it for every `Action::Send` (so a re-send after a crash builds the same
//! payload from the same persisted plan).

use super::plan::Plan;
use proto::command::{
    ApplyCredspec, Command, DomainFacts, EnableGmsa, GrantIdentity, RotateCredential, ValidateCredspec,
    ValidationError, Verify,
};
use proto::rollout::GmsaSetup;
use proto::{CommandKind, Mode};

/// The secret URI the credspecs name: the **unversioned** URI of the domain-user secret, so a
/// rotation (a new version of the same secret) needs no credspec change.
pub fn secret_uri(setup: &GmsaSetup) -> String {
    format!("https://{}.vault.azure.net/secrets/{}", setup.vault.name, setup.secret_name)
}

/// The AD facts of `setup`, all present, or the first one missing named by its field.
pub fn domain_facts(setup: &GmsaSetup) -> Result<DomainFacts, ValidationError> {
    let credspec = &setup.credspec;
    let given = |field: &str, value: &Option<String>| {
        value.clone().filter(|text| !text.trim().is_empty()).ok_or_else(|| {
            ValidationError::new(
                format!("setup.credspec.{field}"),
                "not given, and not read from Active Directory (the coordinator has no central section)",
            )
        })
    };
    Ok(DomainFacts {
        gmsa_account: credspec.gmsa_account.clone(),
        netbios_domain: given("netbios_domain", &credspec.netbios_domain)?,
        dns_domain: given("dns_domain", &credspec.dns_domain)?,
        dns_tree_root: given("dns_tree_root", &credspec.dns_tree_root)?,
        domain_guid: given("domain_guid", &credspec.domain_guid)?,
        domain_sid: given("domain_sid", &credspec.domain_sid)?,
    })
}

/// The command of `step` for a cluster whose effective setup is `setup`; `mode` is
/// [`Mode::DryRun`] for a plan (`fleetctl rollout plan`): read and diff, write nothing.
pub fn command_for(setup: &GmsaSetup, step: CommandKind, mode: Mode) -> Result<Command, ValidationError> {
    let credspec = &setup.credspec;
    Ok(match step {
        CommandKind::EnableGmsa => Command::EnableGmsa(EnableGmsa {
            dns_server: setup.dns_server.clone(),
            root_domain: setup.root_domain.clone(),
            mode,
        }),
        CommandKind::GrantIdentity => Command::GrantIdentity(GrantIdentity {
            vault: setup.vault.clone(),
            secret_name: setup.secret_name.clone(),
            identity: setup.identity.clone(),
            mode,
        }),
        CommandKind::ApplyCredspec => {
            let facts = domain_facts(setup)?;
            Command::ApplyCredspec(ApplyCredspec {
                spec_name: credspec.spec_name.clone(),
                gmsa_account: facts.gmsa_account,
                netbios_domain: facts.netbios_domain,
                dns_domain: facts.dns_domain,
                dns_tree_root: facts.dns_tree_root,
                domain_guid: facts.domain_guid,
                domain_sid: facts.domain_sid,
                secret_uri: secret_uri(setup),
                identity_object_id: None,
                bindings: credspec.bindings.clone(),
                owner: credspec.owner.clone(),
                mode,
            })
        }
        CommandKind::ValidateCredspec => Command::ValidateCredspec(ValidateCredspec {
            spec_name: credspec.spec_name.clone(),
            expected: domain_facts(setup)?,
            vault: setup.vault.clone(),
            // The workload is its own step (`verify`) when the setup asks for it.
            run_workload: false,
            timeout_secs: 600,
        }),
        CommandKind::Verify => Command::Verify(Verify {
            spec_name: credspec.spec_name.clone(),
            namespace: credspec.bindings.first().map_or_else(|| "default".to_string(), |sa| sa.namespace.clone()),
            image: None,
            timeout_secs: 600,
        }),
        other => {
            return Err(ValidationError::new("step", format!("{other} is not a step of a gMSA setup rollout")));
        }
    })
}

/// The command of `step` for `cluster` of `plan`: [`command_for`] on the cluster's effective
/// setup, or — in a rotation's rollout — `rotate-credential` naming the version the rotation
/// wrote to the cluster's secret.
pub fn command_of(plan: &Plan, cluster: &str, step: CommandKind, mode: Mode) -> Result<Command, ValidationError> {
    let setup = plan
        .setup_of(cluster)
        .ok_or_else(|| ValidationError::new("cluster", format!("{cluster} is not in the plan")))?;
    if step != CommandKind::RotateCredential {
        return command_for(&setup, step, mode);
    }
    let rotation = plan.rotation.as_ref().ok_or_else(|| {
        ValidationError::new("step", "rotate-credential is a step of a credential rotation's rollout only")
    })?;
    let key = crate::rotation::run::target_key(&setup.vault, &setup.secret_name);
    let version = rotation
        .versions
        .get(&key)
        .ok_or_else(|| ValidationError::new("rotation.versions", format!("the rotation wrote no version of {key}")))?;
    Ok(Command::RotateCredential(RotateCredential {
        vault: setup.vault.clone(),
        secret_name: setup.secret_name.clone(),
        secret_version: version.clone(),
        spec_name: Some(setup.credspec.spec_name.clone()),
        // The setup's `run_workload`: a canary pod per cluster proves a container start reads
        // the new version.
        run_workload: setup.run_workload,
        timeout_secs: 600,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_setup() -> GmsaSetup {
        let file: proto::rollout::RolloutFile =
            serde_yaml::from_str(include_str!("../../../deploy/rollout.example.yaml")).unwrap();
        file.setup
    }

    #[test]
    fn every_step_builds_a_command_the_validators_accept() {
        let mut setup = mk_setup();
        setup.credspec.netbios_domain = Some("CONTOSO".into());
        setup.credspec.dns_domain = Some("contoso.com".into());
        setup.credspec.dns_tree_root = Some("contoso.com".into());
        setup.credspec.domain_guid = Some("244818ae-87ca-4fcd-92ec-e79e5252348a".into());
        setup.credspec.domain_sid = Some("S-1-5-21-2126729477-2524075714-3094792973".into());
        for step in [
            CommandKind::EnableGmsa,
            CommandKind::GrantIdentity,
            CommandKind::ApplyCredspec,
            CommandKind::ValidateCredspec,
            CommandKind::Verify,
        ] {
            let command = command_for(&setup, step, Mode::Apply).unwrap();
            assert_eq!(command.kind(), step);
            crate::validate::command(&command).unwrap_or_else(|err| panic!("{step}: {err}"));
        }
        let Command::ApplyCredspec(apply) = command_for(&setup, CommandKind::ApplyCredspec, Mode::DryRun).unwrap()
        else {
            panic!()
        };
        assert_eq!(apply.secret_uri, "https://contosoGmsaVault.vault.azure.net/secrets/GMSADomainUserCred");
        assert_eq!(apply.mode, Mode::DryRun);
    }

    #[test]
    fn missing_facts_are_named() {
        let err = command_for(&mk_setup(), CommandKind::ApplyCredspec, Mode::Apply).unwrap_err();
        assert_eq!(err.field, "setup.credspec.netbios_domain");
        assert!(command_for(&mk_setup(), CommandKind::Teardown, Mode::Apply).is_err());
    }
}
