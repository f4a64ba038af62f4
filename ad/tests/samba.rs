//! The `ad` adapter against a real Samba AD DC (testkit::samba): domain facts compared with what
//! Samba reports through other channels (samba-tool, ldbsearch on the database, provisioning),
//! idempotent user and gMSA creation, membership diffs, password rotation, injection and
//! plain-LDAP refusal, teardown. All tests share the process's DC and use unique account names;
//! the teardown test, which compares the whole directory before and after, holds the DC
//! exclusively ([`exclusive_dc`]) while the others share it ([`shared_dc`]).
//!
//! The write guards and the A/B rotation tests live in `samba/guards.rs` and
//! `samba/rotation.rs`: modules of this test binary (one DC per process), files of their own.

use std::sync::Arc;

use ad::escape::{dn_value, filter_value};
use ad::{AccountName, AdError, Directory, GmsaSpec, LdapConfig, LdapDirectory, UserSpec};
use gmsa::SecretString;
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use proto::outcome::{Change, Mode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use testkit::samba::{SambaDc, unique_name};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

#[path = "samba/guards.rs"]
mod guards;
#[path = "samba/rotation.rs"]
mod rotation;

/// Tests that write to the shared DC hold this for reading; a test that compares the whole
/// directory before and after holds it for writing, so no other test's objects appear meanwhile.
static DC_WRITERS: RwLock<()> = RwLock::const_new(());

async fn shared_dc() -> (&'static SambaDc, RwLockReadGuard<'static, ()>) {
    let guard = DC_WRITERS.read().await;
    (SambaDc::shared(), guard)
}

async fn exclusive_dc() -> (&'static SambaDc, RwLockWriteGuard<'static, ()>) {
    let guard = DC_WRITERS.write().await;
    (SambaDc::shared(), guard)
}

fn mk_config(dc: &SambaDc) -> LdapConfig {
    LdapConfig::new(dc.ldaps_url(), dc.admin_principal(), SecretString::new(dc.admin_password()))
        .with_ca_bundle(dc.ca_cert_path())
        .expect("the harness CA bundle loads")
}

fn mk_directory(dc: &SambaDc) -> LdapDirectory {
    LdapDirectory::new(mk_config(dc))
}

fn mk_gmsa_spec(dc: &SambaDc, name: &str, principals: &[&str]) -> GmsaSpec {
    GmsaSpec {
        name: AccountName::gmsa(name).unwrap(),
        dns_host_name: format!("{name}.{}", dc.dns_domain()),
        password_interval_days: 30,
        allowed_principals: principals.iter().map(|principal| AccountName::new(*principal).unwrap()).collect(),
    }
}

/// The credential id tests give a user: `kv/<name>`.
fn mk_spec(name: &str) -> UserSpec {
    UserSpec::new(AccountName::new(name).unwrap(), format!("kv/{name}")).unwrap()
}

async fn mk_user(directory: &LdapDirectory, name: &str) -> SecretString {
    let ensured = directory.ensure_user(&mk_spec(name)).await.unwrap();
    assert_eq!(ensured.ownership, ad::Ownership::Created);
    ensured.new_password.expect("a new user comes with its generated password")
}

/// A plain ldap3 LDAPS connection trusting the harness CA, independent of the adapter's code.
async fn raw_bind(dc: &SambaDc, who: &str, password: &str) -> Result<ldap3::Ldap, ldap3::LdapError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(dc.ca_cert_path()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let settings = LdapConnSettings::new().set_config(Arc::new(tls));
    let (connection, mut ldap) = LdapConnAsync::with_settings(settings, &dc.ldaps_url()).await?;
    tokio::spawn(async move { connection.drive().await });
    ldap.simple_bind(who, password).await?.success()?;
    Ok(ldap)
}

async fn raw_admin(dc: &SambaDc) -> ldap3::Ldap {
    raw_bind(dc, &dc.admin_principal(), dc.admin_password()).await.unwrap()
}

async fn raw_search(ldap: &mut ldap3::Ldap, base: &str, filter: &str, attrs: &[&str]) -> Vec<SearchEntry> {
    let (entries, _) = ldap.search(base, Scope::Subtree, filter, attrs.to_vec()).await.unwrap().success().unwrap();
    entries.into_iter().filter(|entry| !entry.is_ref()).map(SearchEntry::construct).collect()
}

/// `samba-tool domain info 127.0.0.1` as a map (`Forest`, `Domain`, `Netbios domain`, …).
fn samba_tool_domain_info(dc: &SambaDc) -> std::collections::HashMap<String, String> {
    let output = dc.samba_tool(&["domain", "info", "127.0.0.1"]).unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
        .collect()
}

fn ldb_value(dc: &SambaDc, base: &str, scope: &str, filter: &str, attribute: &str) -> String {
    let values = dc.ldbsearch(base, scope, filter, &[attribute]).unwrap();
    assert_eq!(values.len(), 1, "ldbsearch {filter} {attribute}: {values:?}");
    values[0].1.clone()
}

#[tokio::test]
async fn domain_facts_match_what_samba_reports_elsewhere() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let user = unique_name("fu");
    let gmsa = unique_name("fg");
    mk_user(&directory, &user).await;
    directory.ensure_gmsa(&mk_gmsa_spec(dc, &gmsa, &[&user])).await.unwrap();

    let facts = directory.domain_facts(&AccountName::gmsa(&gmsa).unwrap()).await.unwrap();

    let info = samba_tool_domain_info(dc);
    assert_eq!(facts.dns_name, info["Domain"]);
    assert_eq!(facts.dns_tree_name, info["Forest"]);
    assert_eq!(facts.netbios_name, info["Netbios domain"]);
    assert_eq!(facts.domain_sid.to_string(), dc.domain_sid(), "the SID samba-tool provision printed");
    assert_eq!(facts.domain_guid.to_string(), ldb_value(dc, &dc.base_dn(), "base", "(objectClass=*)", "objectGUID"));
    let gmsa_filter = format!("(sAMAccountName={gmsa}$)");
    assert_eq!(facts.gmsa_sid.to_string(), ldb_value(dc, &dc.base_dn(), "sub", &gmsa_filter, "objectSid"));
    assert_eq!(facts.gmsa_account_name, gmsa);
    assert_eq!(facts.gmsa_sid.parent().as_ref(), Some(&facts.domain_sid));
}

#[tokio::test]
async fn credspec_built_from_samba_facts_passes_the_validator() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let user = unique_name("cu");
    let gmsa = unique_name("cg");
    mk_user(&directory, &user).await;
    directory.ensure_gmsa(&mk_gmsa_spec(dc, &gmsa, &[&user])).await.unwrap();
    let facts = directory.domain_facts(&AccountName::gmsa(&gmsa).unwrap()).await.unwrap();

    let inputs = gmsa::credspec::CredSpecInputs {
        name: "aks-gmsa-spec".to_string(),
        gmsa_account: facts.gmsa_account_name.clone(),
        netbios_domain: facts.netbios_name.clone(),
        dns_domain: facts.dns_name.clone(),
        dns_tree_root: facts.dns_tree_name.clone(),
        domain_guid: facts.domain_guid.to_string(),
        domain_sid: facts.domain_sid.to_string(),
        secret_uri: "https://gmsavault.vault.azure.net/secrets/GMSADomainUserCred".to_string(),
        managed_identity_object_id: "6e8c1e0e-3c1f-4a5e-9c59-2f1f0f7b1a11".to_string(),
    };
    let credspec = gmsa::credspec::CredSpec::new(&inputs).expect("facts read from Samba make a valid credspec");
    let body = credspec.body().to_string();
    assert!(body.contains(&facts.domain_sid.to_string()) && body.contains(&gmsa), "{body}");
}

#[tokio::test]
async fn user_and_gmsa_are_created_once() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let spec = mk_spec(&unique_name("ou"));

    let first = directory.ensure_user(&spec).await.unwrap();
    assert_eq!(first.outcome.change, Change::Changed);
    let password = first.new_password.expect("created now");
    let diff_text = serde_json::to_string(&first.outcome).unwrap();
    assert!(!diff_text.contains(password.expose()) && diff_text.contains("<redacted>"), "{diff_text}");
    let user_upn = format!("{}@{}", spec.name, dc.dns_domain());
    raw_bind(dc, &user_upn, password.expose()).await.expect("the generated password works");

    let second = directory.ensure_user(&spec).await.unwrap();
    assert_eq!(second.outcome.change, Change::Unchanged);
    assert!(second.new_password.is_none());
    assert_eq!(second.ownership, ad::Ownership::Ours, "created with the marker for its credential");

    let gmsa = mk_gmsa_spec(dc, &unique_name("og"), &[spec.name.as_str()]);
    let created = directory.ensure_gmsa(&gmsa).await.unwrap();
    assert_eq!(created.change, Change::Changed);
    assert!(created.diff.iter().any(|change| change.path == "/msDS-ManagedPasswordInterval"));
    assert_eq!(directory.ensure_gmsa(&gmsa).await.unwrap().change, Change::Unchanged);

    let mut admin = raw_admin(dc).await;
    let filter = format!("(sAMAccountName={})", gmsa.name.machine_account());
    let found =
        raw_search(&mut admin, &dc.base_dn(), &filter, &["objectClass", "dNSHostName", "msDS-ManagedPasswordInterval"])
            .await;
    assert_eq!(found.len(), 1, "exactly one gMSA after two runs");
    assert!(found[0].attrs["objectClass"].iter().any(|class| class == "msDS-GroupManagedServiceAccount"));
    assert_eq!(found[0].attrs["msDS-ManagedPasswordInterval"], ["30"]);
}

#[tokio::test]
async fn allowed_principals_change_by_exactly_the_diff() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let first_user = unique_name("m1");
    let second_user = unique_name("m2");
    mk_user(&directory, &first_user).await;
    mk_user(&directory, &second_user).await;
    let gmsa_name = unique_name("mg");
    directory.ensure_gmsa(&mk_gmsa_spec(dc, &gmsa_name, &[&first_user])).await.unwrap();

    let mut admin = raw_admin(dc).await;
    let sid_of =
        |entries: Vec<SearchEntry>| ad::Sid::from_bytes(&entries[0].bin_attrs["objectSid"][0]).unwrap().to_string();
    let second_sid =
        sid_of(raw_search(&mut admin, &dc.base_dn(), &format!("(sAMAccountName={second_user})"), &["objectSid"]).await);
    let first_sid =
        sid_of(raw_search(&mut admin, &dc.base_dn(), &format!("(sAMAccountName={first_user})"), &["objectSid"]).await);

    let both = mk_gmsa_spec(dc, &gmsa_name, &[&first_user, &second_user]);
    let added = directory.ensure_gmsa(&both).await.unwrap();
    assert_eq!(added.change, Change::Changed);
    assert_eq!(added.diff.len(), 1, "{:?}", added.diff);
    assert_eq!(added.diff[0].path, format!("/msDS-GroupMSAMembership/{second_sid}"));
    assert_eq!(added.diff[0].before, None);
    assert_eq!(added.diff[0].after, Some(serde_json::json!(second_user)));

    assert_eq!(directory.ensure_gmsa(&both).await.unwrap().change, Change::Unchanged);

    let removed = directory.ensure_gmsa(&mk_gmsa_spec(dc, &gmsa_name, &[&second_user])).await.unwrap();
    assert_eq!(removed.change, Change::Changed);
    assert_eq!(removed.diff.len(), 1, "{:?}", removed.diff);
    assert_eq!(removed.diff[0].path, format!("/msDS-GroupMSAMembership/{first_sid}"));
    assert_eq!(removed.diff[0].after, None);

    // The stored descriptor, read without the adapter, now allows only the second user.
    let filter = format!("(sAMAccountName={gmsa_name}$)");
    let entries = raw_search(&mut admin, &dc.base_dn(), &filter, &["msDS-GroupMSAMembership"]).await;
    let descriptor = ad::security_descriptor::parse(&entries[0].bin_attrs["msDS-GroupMSAMembership"][0]).unwrap();
    let allowed: Vec<String> = descriptor.allowed_principals().iter().map(ToString::to_string).collect();
    assert_eq!(allowed, [second_sid]);
}

#[tokio::test]
async fn rotation_returns_a_working_password_and_retires_the_old_one() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let name = unique_name("ru");
    let old_password = mk_user(&directory, &name).await;
    let upn = format!("{name}@{}", dc.dns_domain());

    let new_password = directory.rotate_password(&mk_spec(&name)).await.unwrap();

    assert_ne!(new_password, old_password);
    assert!(format!("{new_password:?} {new_password}").contains("redacted"));
    raw_bind(dc, &upn, new_password.expose()).await.expect("the new password binds");
    let old_bind = raw_bind(dc, &upn, old_password.expose()).await;
    assert!(old_bind.is_err(), "the old password no longer binds");
}

#[tokio::test]
async fn injection_attempts_match_and_create_nothing() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let injection = "*)(objectClass=*";

    assert!(matches!(AccountName::new(injection), Err(ad::account::NameError::ForbiddenCharacter { .. })));

    // Escaped, the injection is a literal name that matches nothing; unescaped it would match everything.
    let mut admin = raw_admin(dc).await;
    let escaped = format!("(&(objectClass=user)(sAMAccountName={}))", filter_value(injection));
    assert!(raw_search(&mut admin, &dc.base_dn(), &escaped, &["cn"]).await.is_empty());
    let unescaped = format!("(&(objectClass=user)(sAMAccountName={injection}))");
    assert!(raw_search(&mut admin, &dc.base_dn(), &unescaped, &["cn"]).await.len() > 1);

    // A legal name with LDAP-significant characters is created once and found again by its exact name.
    let odd_name = format!("#o(k) {}", unique_name("i"));
    let spec = mk_spec(&odd_name);
    assert_eq!(directory.ensure_user(&spec).await.unwrap().outcome.change, Change::Changed);
    assert_eq!(directory.ensure_user(&spec).await.unwrap().outcome.change, Change::Unchanged);
    let found =
        raw_search(&mut admin, &dc.base_dn(), &format!("(sAMAccountName={})", filter_value(&odd_name)), &["cn"]).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].attrs["cn"], [odd_name]);

    // DN escaping: an object whose cn holds every RFC 4514 special is created where intended.
    let tricky_cn = format!("a,b+c\"d<e>f;g=h\\i #{}", unique_name("d"));
    let dn = format!("CN={},CN=Users,{}", dn_value(&tricky_cn).unwrap(), dc.base_dn());
    let attributes = vec![("objectClass", std::collections::HashSet::from(["container"]))];
    admin.add(&dn, attributes).await.unwrap().success().unwrap();
    let found = raw_search(&mut admin, &dc.base_dn(), &format!("(cn={})", filter_value(&tricky_cn)), &["cn"]).await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].attrs["cn"], [tricky_cn]);
}

#[tokio::test]
async fn password_operations_are_refused_over_plain_ldap_before_connecting() {
    let (dc, _shared) = shared_dc().await;
    // Nothing listens on port 1: a connection attempt would fail with Connect, not PlaintextRefused.
    for url in [dc.ldap_url(), "ldap://127.0.0.1:1".to_string()] {
        let directory =
            LdapDirectory::new(LdapConfig::new(url, dc.admin_principal(), SecretString::new(dc.admin_password())));
        let rotation = directory.rotate_password(&mk_spec("Administrator")).await;
        assert!(matches!(rotation, Err(AdError::PlaintextRefused { .. })), "{rotation:?}");
        let creation = directory.ensure_user(&mk_spec(&unique_name("pl"))).await;
        assert!(matches!(creation, Err(AdError::PlaintextRefused { .. })), "{creation:?}");
    }
    // The same ldap:// URL upgraded with StartTLS is encrypted and works.
    let mut config = mk_config(dc);
    config.url = dc.ldap_url();
    config.start_tls = true;
    LdapDirectory::new(config).kds_status().await.expect("StartTLS connection binds");
}

#[tokio::test]
async fn tls_verification_is_on_by_default() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (dc, _shared) = shared_dc().await;
    // System roots do not include the harness CA, so the DC's certificate must be rejected.
    let directory = LdapDirectory::new(LdapConfig::new(
        dc.ldaps_url(),
        dc.admin_principal(),
        SecretString::new(dc.admin_password()),
    ));
    let result = directory.kds_status().await;
    assert!(matches!(result, Err(AdError::Connect { .. })), "{result:?}");
}

#[tokio::test]
async fn kds_root_key_status_matches_the_database() {
    let (dc, _shared) = shared_dc().await;
    let status = mk_directory(dc).kds_status().await.unwrap();
    let in_database = dc
        .ldbsearch(
            &dc.base_dn().replacen("DC=", "CN=Configuration,DC=", 1),
            "sub",
            "(objectClass=msKds-ProvRootKey)",
            &["cn"],
        )
        .unwrap();
    assert_eq!(status.root_keys.len(), in_database.len());
    // Samba 4.22 provisions one root key, back-dated 10 hours so that it is usable at once (4.17
    // had none); the harness adds none of its own.
    assert_eq!(status.root_keys.len(), 1, "{status:?}");
    assert!(status.is_effective(std::time::SystemTime::now()), "{status:?}");
}

/// Every object of the domain partition as (DN, objectGUID), read over plain ldap3.
async fn all_objects(dc: &SambaDc) -> std::collections::BTreeSet<(String, Vec<u8>)> {
    let mut admin = raw_admin(dc).await;
    let entries = raw_search(&mut admin, &dc.base_dn(), "(objectClass=*)", &["objectGUID"]).await;
    entries.into_iter().map(|entry| (entry.dn.clone(), entry.bin_attrs["objectGUID"][0].clone())).collect()
}

/// The accounts as the database itself lists them (ldbsearch on sam.ldb, bypassing LDAP):
/// every sAMAccountName and every objectSid.
fn accounts_in_database(dc: &SambaDc) -> std::collections::BTreeSet<(String, String)> {
    dc.ldbsearch(&dc.base_dn(), "sub", "(sAMAccountName=*)", &["sAMAccountName", "objectSid"])
        .unwrap()
        .into_iter()
        .collect()
}

#[tokio::test]
async fn teardown_returns_the_directory_to_exactly_what_it_was() {
    let (dc, _exclusive) = exclusive_dc().await;
    let directory = mk_directory(dc);
    let objects_before = all_objects(dc).await;
    let accounts_before = accounts_in_database(dc);
    assert!(accounts_before.iter().any(|(_, value)| value == "Administrator"), "{accounts_before:?}");

    let user = AccountName::new(unique_name("tu")).unwrap();
    let gmsa = AccountName::gmsa(unique_name("tg")).unwrap();
    mk_user(&directory, user.as_str()).await;
    directory.ensure_gmsa(&mk_gmsa_spec(dc, gmsa.as_str(), &[user.as_str()])).await.unwrap();
    assert_eq!(all_objects(dc).await.len(), objects_before.len() + 2);

    // Dry run: both planned, each diff names the object's DN, and nothing is deleted.
    let planned_gmsa = directory.delete_gmsa(&gmsa, Mode::DryRun).await.unwrap();
    let planned_user = directory.delete_user(&user, Mode::DryRun).await.unwrap();
    assert_eq!((planned_gmsa.step.as_str(), planned_gmsa.change), ("gmsa-delete", Change::Planned));
    assert_eq!((planned_user.step.as_str(), planned_user.change), ("user-delete", Change::Planned));
    let gmsa_dn = format!("CN={gmsa},CN=Managed Service Accounts,{}", dc.base_dn());
    let user_dn = format!("CN={user},CN=Users,{}", dc.base_dn());
    assert_eq!(planned_gmsa.diff.len(), 1);
    assert_eq!(planned_gmsa.diff[0].path, format!("/{gmsa_dn}"));
    assert_eq!(planned_gmsa.diff[0].after, None);
    assert_eq!(planned_user.diff[0].path, format!("/{user_dn}"));
    assert_eq!(all_objects(dc).await.len(), objects_before.len() + 2, "a dry run deletes nothing");

    // Reverse order of setup: the gMSA, then the user whose SID it names.
    let deleted_gmsa = directory.delete_gmsa(&gmsa, Mode::Apply).await.unwrap();
    let deleted_user = directory.delete_user(&user, Mode::Apply).await.unwrap();
    assert_eq!(deleted_gmsa.change, Change::Changed);
    assert_eq!(deleted_gmsa.diff, planned_gmsa.diff, "the dry run planned exactly what was done");
    assert_eq!(deleted_user.change, Change::Changed);
    assert_eq!(deleted_user.diff, planned_user.diff);

    assert_eq!(all_objects(dc).await, objects_before, "every object and only those, same GUIDs");
    assert_eq!(accounts_in_database(dc), accounts_before);

    for outcome in [
        directory.delete_gmsa(&gmsa, Mode::Apply).await.unwrap(),
        directory.delete_user(&user, Mode::Apply).await.unwrap(),
        directory.delete_gmsa(&gmsa, Mode::DryRun).await.unwrap(),
    ] {
        assert_eq!(outcome.change, Change::Unchanged, "{outcome:?}");
        assert!(outcome.diff.is_empty());
    }
}

#[tokio::test]
async fn teardown_refuses_objects_of_another_class() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let refused_dn = |result: Result<proto::outcome::StepOutcome, AdError>| match result {
        Err(AdError::DeleteRefused { dn, rule }) => (dn, rule),
        other => panic!("expected DeleteRefused, got {other:?}"),
    };

    // A plain user whose sAMAccountName is what a gMSA of that name would have.
    let lookalike = unique_name("lk");
    mk_user(&directory, &format!("{lookalike}$")).await;
    let gmsa_name = AccountName::gmsa(&lookalike).unwrap();
    for mode in [Mode::Apply, Mode::DryRun] {
        let (dn, rule) = refused_dn(directory.delete_gmsa(&gmsa_name, mode).await);
        assert_eq!(dn, format!("CN={lookalike}$,CN=Users,{}", dc.base_dn()));
        assert!(rule.contains("gmsa-delete deletes only msDS-GroupManagedServiceAccount"), "{rule}");
    }

    // A gMSA and the DC's computer account through user-delete.
    let gmsa = unique_name("lg");
    directory.ensure_gmsa(&mk_gmsa_spec(dc, &gmsa, &[&format!("{lookalike}$")])).await.unwrap();
    let (dn, rule) =
        refused_dn(directory.delete_user(&AccountName::new(format!("{gmsa}$")).unwrap(), Mode::Apply).await);
    assert!(dn.starts_with(&format!("CN={gmsa},CN=Managed Service Accounts")), "{dn}");
    assert!(rule.contains("user-delete deletes only user objects"), "{rule}");
    let (dn, _) = refused_dn(directory.delete_user(&AccountName::new("DC1$").unwrap(), Mode::Apply).await);
    assert!(dn.contains("OU=Domain Controllers"), "{dn}");

    // A built-in user.
    let (dn, rule) = refused_dn(directory.delete_user(&AccountName::new("Administrator").unwrap(), Mode::Apply).await);
    assert!(dn.starts_with("CN=Administrator,"), "{dn}");
    assert!(rule.contains("isCriticalSystemObject") || rule.contains("RID 500"), "{rule}");

    // Everything refused is still there.
    let mut admin = raw_admin(dc).await;
    for name in [format!("{lookalike}$"), format!("{gmsa}$"), "DC1$".to_string(), "Administrator".to_string()] {
        let found = raw_search(&mut admin, &dc.base_dn(), &format!("(sAMAccountName={name})"), &["cn"]).await;
        assert_eq!(found.len(), 1, "{name} still exists");
    }
}
