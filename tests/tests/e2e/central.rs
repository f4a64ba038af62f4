//! The coordinator's central side (#16, stage 0) on real components: `Central::prepare` against a
//! real Samba AD DC and the Azure simulator — what it creates, that a second run and a dry run
//! write nothing, that the generated password reaches only the vault, and what it refuses.

use coordinator::central::{Central, CentralError, Prepared};
use gmsa::SecretString;
use proto::rollout::GmsaSetup;
use proto::{Change, Mode};
use serde_json::json;
use std::sync::{Arc, Mutex};
use testkit::samba::{SambaDc, unique_name};
use tests::world::{COORDINATOR_OBJECT_ID, SimWorld, VAULT_NAME, VAULT_RESOURCE_GROUP, VAULT_SUBSCRIPTION};

fn mk_directory(dc: &SambaDc) -> ad::LdapDirectory {
    let config = ad::LdapConfig::new(dc.ldaps_url(), dc.admin_principal(), SecretString::new(dc.admin_password()))
        .with_ca_bundle(dc.ca_cert_path())
        .unwrap();
    ad::LdapDirectory::new(config)
}

pub fn mk_central(world: &SimWorld, dc: &SambaDc) -> Central {
    let writer = (world.azure.tenant_id(), COORDINATOR_OBJECT_ID.to_string());
    Central::new(world.coordinator_azure().unwrap(), mk_directory(dc), Some(writer))
}

fn mk_setup(vault: &str, secret: &str, user: &str, gmsa: &str, central: serde_json::Value) -> GmsaSetup {
    let mut central_section = json!({"domain_user": user, "vault_create": {"location": "westeurope"}});
    if let (Some(section), Some(extra)) = (central_section.as_object_mut(), central.as_object()) {
        section.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "vault": {"subscription_id": VAULT_SUBSCRIPTION, "resource_group": VAULT_RESOURCE_GROUP, "name": vault},
        "secret_name": secret,
        "identity": {"type": "kubelet"},
        "credspec": {"spec_name": "aks-gmsa-spec", "gmsa_account": gmsa},
        "central": central_section,
    }))
    .unwrap()
}

fn vault_id(name: &str) -> String {
    azure::VaultRef::new(VAULT_SUBSCRIPTION, VAULT_RESOURCE_GROUP, name).id()
}

/// The domain's objects, and the change counters of the accounts a test names.
fn directory_state(dc: &SambaDc, accounts: &[&str]) -> Vec<(String, String)> {
    let mut state = dc.ldbsearch(&dc.base_dn(), "sub", "(objectClass=*)", &["distinguishedName"]).unwrap();
    for account in accounts {
        let filter = format!("(sAMAccountName={account})");
        state.extend(dc.ldbsearch(&dc.base_dn(), "sub", &filter, &["uSNChanged", "pwdLastSet"]).unwrap());
    }
    state.sort();
    state
}

fn changes(prepared: &Prepared) -> Vec<(&str, Change)> {
    prepared.steps.iter().map(|step| (step.step.as_str(), step.change)).collect()
}

fn refusal_code(result: Result<Prepared, CentralError>) -> String {
    match result {
        Err(err) => {
            eprintln!("refused: {err}");
            err.code()
        }
        Ok(prepared) => panic!("expected a refusal, got {:?}", changes(&prepared)),
    }
}

/// Collects everything the subscriber writes.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A current-thread runtime: the simulator's tasks and the adapters all log to the captured
/// TRACE subscriber.
#[tokio::test]
async fn prepare_creates_vault_secret_user_and_gmsa_with_samba_facts_then_changes_nothing_and_a_dry_run_writes_nothing()
{
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let _dc_writer = super::support::SHARED_DC_WRITERS.lock().await;
    // Another test's thread may have hit these callsites first, with no subscriber: re-ask
    // every callsite now that this thread's TRACE subscriber exists.
    tracing::callsite::rebuild_interest_cache();
    let dc = tokio::task::spawn_blocking(SambaDc::shared).await.unwrap();
    let world = SimWorld::build("central", 0, 1).await.unwrap();
    let central = mk_central(&world, dc);
    let (user, gmsa) = (unique_name("gcu"), unique_name("gcm"));
    let vault = format!("kv{}", unique_name("c"));
    let setup = mk_setup(&vault, "GMSADomainUserCred", &user, &gmsa, json!({}));
    let gmsa_sam = format!("{gmsa}$");
    let accounts = [user.as_str(), gmsa_sam.as_str()];

    // A dry run reads and plans; nothing is written anywhere.
    let (mutations_before, directory_before) = (world.azure.mutations().len(), directory_state(dc, &accounts));
    let planned = central.prepare(&setup, Mode::DryRun).await.unwrap();
    assert_eq!(
        changes(&planned),
        [
            ("vault-ensure", Change::Planned),
            ("domain-user", Change::Planned),
            ("standby-user", Change::Planned),
            ("gmsa-ensure", Change::Planned),
            ("domain-facts", Change::Unchanged),
            ("secret-write", Change::Planned),
        ]
    );
    assert_eq!(planned.credspec.domain_sid, None, "no gMSA yet: the facts are not read");
    assert_eq!(world.azure.mutations().len(), mutations_before, "a dry run writes nothing to Azure");
    assert_eq!(directory_state(dc, &accounts), directory_before, "a dry run writes nothing to AD");

    // Apply: everything is created, the facts are Samba's.
    let prepared = central.prepare(&setup, Mode::Apply).await.unwrap();
    assert_eq!(
        changes(&prepared),
        [
            ("vault-ensure", Change::Changed),
            ("domain-user", Change::Changed),
            ("standby-user", Change::Changed),
            ("gmsa-ensure", Change::Changed),
            ("domain-facts", Change::Unchanged),
            ("secret-write", Change::Changed),
        ]
    );
    let credspec = &prepared.credspec;
    assert_eq!(credspec.netbios_domain.as_deref(), Some(dc.netbios_domain()));
    assert_eq!(credspec.dns_domain.as_deref(), Some(dc.dns_domain().as_str()));
    assert_eq!(credspec.dns_tree_root.as_deref(), Some(dc.dns_domain().as_str()));
    assert_eq!(credspec.domain_sid.as_deref(), Some(dc.domain_sid()));
    let guid = dc.ldbsearch(&dc.base_dn(), "base", "(objectClass=*)", &["objectGUID"]).unwrap();
    assert_eq!(credspec.domain_guid.as_deref(), Some(guid[0].1.as_str()));
    assert_eq!(
        prepared.secret_uri,
        format!("https://{}.vault.azure.net/secrets/GMSADomainUserCred", vault.to_ascii_lowercase())
    );
    // Both users may retrieve the gMSA's password: A, and B for rotation.
    let gmsa_step = &prepared.steps[3];
    assert_eq!(gmsa_step.step, "gmsa-ensure");
    let mut allowed: Vec<&serde_json::Value> = gmsa_step.observed["allowed"].as_object().unwrap().values().collect();
    allowed.sort_by_key(|value| value.to_string());
    assert_eq!(allowed, [&json!(user), &json!(format!("{user}-b"))]);

    // The vault holds DOMAIN\user:password, and the password is the user's: it binds.
    let value = world.azure.secret_value(&vault_id(&vault), "GMSADomainUserCred", None).expect("the secret is written");
    let password = value
        .strip_prefix(&format!("{}\\{user}:", dc.netbios_domain()))
        .unwrap_or_else(|| panic!("the secret is not {}\\{user}:…", dc.netbios_domain()))
        .to_string();
    let as_user =
        ad::LdapConfig::new(dc.ldaps_url(), format!("{user}@{}", dc.dns_domain()), SecretString::new(password.clone()))
            .with_ca_bundle(dc.ca_cert_path())
            .unwrap();
    ad::Directory::kds_status(&ad::LdapDirectory::new(as_user)).await.expect("the stored password binds");

    // Again: every step unchanged, nothing written.
    let (mutations_after, directory_after) = (world.azure.mutations().len(), directory_state(dc, &accounts));
    let again = central.prepare(&setup, Mode::Apply).await.unwrap();
    assert!(again.steps.iter().all(|step| step.change == Change::Unchanged), "{:?}", changes(&again));
    assert_eq!(again.credspec, prepared.credspec);
    assert_eq!(world.azure.mutations().len(), mutations_after, "a second run writes nothing to Azure");
    assert_eq!(directory_state(dc, &accounts), directory_after, "a second run writes nothing to AD");
    let dry_again = central.prepare(&setup, Mode::DryRun).await.unwrap();
    assert!(dry_again.steps.iter().all(|step| step.change == Change::Unchanged), "{:?}", changes(&dry_again));

    // The password is in no outcome and no log line.
    for run in [&planned, &prepared, &again, &dry_again] {
        let outcomes = serde_json::to_string(&run.steps).unwrap();
        assert!(!outcomes.contains(&password), "the password is in an outcome");
    }
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(logs.contains("central.prepare") && logs.contains("TRACE"), "the TRACE log was captured");
    assert!(!logs.contains(&password), "the password is in the TRACE log");
    assert!(!logs.contains(tests::world::COORDINATOR_SECRET), "the client secret is in the TRACE log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepare_refuses_other_users_secrets_existing_users_built_ins_other_classes_and_missing_vaults() {
    use ad::Directory;
    let _dc_writer = super::support::SHARED_DC_WRITERS.lock().await;
    let dc = tokio::task::spawn_blocking(SambaDc::shared).await.unwrap();
    let world = SimWorld::build("refuse", 0, 1).await.unwrap();
    let central = mk_central(&world, dc);
    let directory = mk_directory(dc);
    let azure = world.coordinator_azure().unwrap();
    let shared_vault = azure::VaultRef::new(VAULT_SUBSCRIPTION, VAULT_RESOURCE_GROUP, VAULT_NAME);
    let vault_body = world.azure.vault(&vault_id(VAULT_NAME));
    let gmsa = unique_name("grm");
    let gmsa_sam = format!("{gmsa}$");

    // Someone else's user, and no secret: refused, its password is not reset, nothing is created.
    let theirs = unique_name("gru");
    let secret = unique_name("s");
    // Marked for the credential the setups below name (`<vault>/<secret>`), as the coordinator marks it.
    let theirs_spec =
        ad::UserSpec::new(ad::AccountName::new(&theirs).unwrap(), format!("{VAULT_NAME}/{secret}")).unwrap();
    directory.ensure_user(&theirs_spec).await.unwrap();
    let setup = mk_setup(VAULT_NAME, &secret, &theirs, &gmsa, json!({}));
    let accounts = [theirs.as_str(), gmsa_sam.as_str(), "krbtgt"];
    let (mutations, directory_before) = (world.azure.mutations().len(), directory_state(dc, &accounts));
    let pwd_last_set_before = pwd_last_set(dc, &theirs);
    assert_eq!(refusal_code(central.prepare(&setup, Mode::Apply).await), "existing_user_without_secret");
    assert_eq!(refusal_code(central.prepare(&setup, Mode::DryRun).await), "existing_user_without_secret");
    // A built-in account is refused even when a reset is allowed, before the gMSA names it.
    let krbtgt = mk_setup(VAULT_NAME, &secret, "krbtgt", &gmsa, json!({"reset_existing_user_password": true}));
    assert_eq!(refusal_code(central.prepare(&krbtgt, Mode::Apply).await), "ad_write_refused");
    // A computer account (the DC's) is neither the domain user nor the gMSA.
    let dc_account = dc
        .ldbsearch(&dc.base_dn(), "sub", "(userAccountControl:1.2.840.113556.1.4.803:=8192)", &["sAMAccountName"])
        .unwrap()[0]
        .1
        .clone();
    let as_user = mk_setup(VAULT_NAME, &secret, &dc_account, &gmsa, json!({}));
    assert_eq!(refusal_code(central.prepare(&as_user, Mode::Apply).await), "wrong_object_class");
    let accounts_with_dc = [theirs.as_str(), gmsa_sam.as_str(), "krbtgt", dc_account.as_str()];
    let directory_with_dc = directory_state(dc, &accounts_with_dc);
    let mine = unique_name("grv");
    let as_gmsa = mk_setup(VAULT_NAME, &unique_name("s"), &mine, dc_account.trim_end_matches('$'), json!({}));
    assert_eq!(refusal_code(central.prepare(&as_gmsa, Mode::DryRun).await), "wrong_object_class");
    assert_eq!(directory_state(dc, &accounts_with_dc), directory_with_dc, "the DC's account is untouched");
    // A secret holding another user's credential is never overwritten.
    let other_secret = unique_name("s");
    let foreign = SecretString::new(format!("{}\\someone:Not-Ours-1", dc.netbios_domain()));
    azure.write_domain_user_secret(&shared_vault, Some(&other_secret), &foreign).await.unwrap();
    let mutations_foreign = world.azure.mutations().len();
    let overwrite = mk_setup(VAULT_NAME, &other_secret, &unique_name("grw"), &gmsa, json!({}));
    assert_eq!(refusal_code(central.prepare(&overwrite, Mode::Apply).await), "secret_holds_other_user");
    // A missing vault is created only when the setup says where.
    let mut no_create = mk_setup(&format!("kv{}", unique_name("m")), &secret, &theirs, &gmsa, json!({}));
    no_create.central.as_mut().unwrap().vault_create = None;
    assert_eq!(refusal_code(central.prepare(&no_create, Mode::Apply).await), "vault_missing");
    assert_eq!(world.azure.mutations().len(), mutations_foreign, "refusals write nothing to Azure");
    assert_eq!(mutations_foreign, mutations + 1, "only the test's own secret was written");
    assert_eq!(directory_state(dc, &accounts), directory_before, "refusals write nothing to AD");

    // With the operator's word, the existing user gets a new password, written to the secret; the
    // existing vault is left exactly as it was.
    let reset = mk_setup(VAULT_NAME, &secret, &theirs, &gmsa, json!({"reset_existing_user_password": true}));
    let prepared = central.prepare(&reset, Mode::Apply).await.unwrap();
    assert_eq!(
        changes(&prepared),
        [
            ("vault-ensure", Change::Unchanged),
            ("domain-user", Change::Unchanged),
            ("standby-user", Change::Changed),
            ("gmsa-ensure", Change::Changed),
            ("domain-facts", Change::Unchanged),
            ("secret-write", Change::Changed),
        ]
    );
    assert_ne!(pwd_last_set(dc, &theirs), pwd_last_set_before, "the password was reset");
    assert_eq!(world.azure.vault(&vault_id(VAULT_NAME)), vault_body, "the existing vault is unchanged");
    let again = central.prepare(&reset, Mode::Apply).await.unwrap();
    assert!(again.steps.iter().all(|step| step.change == Change::Unchanged), "no second reset: {:?}", changes(&again));
}

fn pwd_last_set(dc: &SambaDc, account: &str) -> String {
    let values = dc.ldbsearch(&dc.base_dn(), "sub", &format!("(sAMAccountName={account})"), &["pwdLastSet"]).unwrap();
    values.first().map(|(_, value)| value.clone()).unwrap_or_default()
}
