//! Two users A and B allowed to retrieve one gMSA's password, as the zero-downtime rotation
//! (issue #19) uses them: both read `msDS-ManagedPassword`, a third user does not; rotating B
//! leaves A working and retires B's previous password (`old password allowed period = 0`); the
//! CCG-like client succeeds with each user's credential, and never fails while A and B are
//! rotated alternately with the secret always naming the user not being rotated.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use ad::read_managed_password;
use testkit::ccg::{CcgClient, CcgSuccess, SecretSource};

/// A, B (allowed) and C (not), and a gMSA allowing exactly A and B.
struct RotationFixture {
    users: [(String, SecretString); 3],
    gmsa: AccountName,
}

async fn mk_rotation_fixture(dc: &SambaDc, directory: &LdapDirectory) -> RotationFixture {
    let mut users = Vec::new();
    for prefix in ["ra", "rb", "rc"] {
        let name = unique_name(prefix);
        let password = mk_user(directory, &name).await;
        users.push((name, password));
    }
    let gmsa_name = unique_name("rg");
    let spec = mk_gmsa_spec(dc, &gmsa_name, &[&users[0].0, &users[1].0]);
    directory.ensure_gmsa(&spec).await.unwrap();
    let users: [(String, SecretString); 3] = users.try_into().unwrap();
    RotationFixture { users, gmsa: spec.name }
}

/// An adapter configuration bound as the standard user `name`.
fn mk_user_config(dc: &SambaDc, name: &str, password: &SecretString) -> LdapConfig {
    LdapConfig::new(dc.ldaps_url(), format!("{name}@{}", dc.dns_domain()), password.duplicate())
        .with_ca_bundle(dc.ca_cert_path())
        .unwrap()
}

fn mk_secret(dc: &SambaDc, name: &str, password: &SecretString) -> SecretString {
    SecretString::new(format!("{}\\{name}:{}", dc.netbios_domain(), password.expose()))
}

fn mk_ccg(dc: &SambaDc, gmsa: &AccountName, secret: Arc<Mutex<SecretString>>) -> CcgClient {
    let source: SecretSource =
        Arc::new(move || secret.lock().map(|value| value.duplicate()).map_err(|e| e.to_string()));
    CcgClient::new(source, dc.ldaps_url(), dc.ca_cert_path(), gmsa.clone(), dc.realm(), "127.0.0.1").unwrap()
}

#[tokio::test]
async fn both_rotation_users_read_the_managed_password_and_a_third_does_not() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let fixture = mk_rotation_fixture(dc, &directory).await;
    let [(a, a_password), (b, b_password), (c, c_password)] = &fixture.users;

    let through_a = read_managed_password(&mk_user_config(dc, a, a_password), &fixture.gmsa).await.unwrap();
    let through_b = read_managed_password(&mk_user_config(dc, b, b_password), &fixture.gmsa).await.unwrap();
    assert_eq!(through_a.current_utf16le().expose().len(), 256, "Samba's 256-byte gMSA password");
    assert_eq!(through_a.current_utf16le().expose(), through_b.current_utf16le().expose(), "one password");
    assert!(through_a.query_password_interval > Duration::ZERO);
    let debug = format!("{through_a:?}");
    // The bytes' own Debug form (`[12, 200, …]`) must not appear; a single byte's digits could
    // appear anywhere (the interval, say), which made this check flaky.
    let leaked = format!("{:?}", &through_a.current_utf16le().expose()[..8]);
    let leaked = leaked.trim_end_matches(']');
    assert!(debug.contains("<redacted>") && !debug.contains(leaked), "{debug}");

    let denied = read_managed_password(&mk_user_config(dc, c, c_password), &fixture.gmsa).await;
    match denied {
        Err(error @ AdError::ManagedPasswordDenied { .. }) => {
            assert_eq!(error.code(), "ad_managed_password_denied");
            assert!(error.to_string().contains(c.as_str()), "{error}");
        }
        other => panic!("expected ManagedPasswordDenied, got {other:?}"),
    }
    // The administrator is not an allowed principal either: being powerful is not being allowed.
    let admin = read_managed_password(&mk_config(dc), &fixture.gmsa).await;
    assert!(matches!(admin, Err(AdError::ManagedPasswordDenied { .. })), "{admin:?}");
}

#[tokio::test]
async fn rotating_b_leaves_a_working_and_retires_b_previous_password() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let fixture = mk_rotation_fixture(dc, &directory).await;
    let [(a, a_password), (b, b_old), _] = &fixture.users;

    let b_new = directory.rotate_password(&mk_spec(b)).await.unwrap();

    // The harness DC runs with `old password allowed period = 0`: B's previous password is
    // refused at once, its new one and A's untouched one work, for binds and for the gMSA.
    assert!(raw_bind(dc, &format!("{b}@{}", dc.dns_domain()), b_old.expose()).await.is_err());
    let old_read = read_managed_password(&mk_user_config(dc, b, b_old), &fixture.gmsa).await;
    assert!(matches!(old_read, Err(AdError::Bind { .. })), "{old_read:?}");
    read_managed_password(&mk_user_config(dc, b, &b_new), &fixture.gmsa).await.expect("B's new password works");
    read_managed_password(&mk_user_config(dc, a, a_password), &fixture.gmsa).await.expect("A still works");
}

#[tokio::test]
async fn the_ccg_client_succeeds_with_each_users_credential_and_fails_with_a_third() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let fixture = mk_rotation_fixture(dc, &directory).await;
    for (name, password) in &fixture.users[..2] {
        let client = mk_ccg(dc, &fixture.gmsa, Arc::new(Mutex::new(mk_secret(dc, name, password))));
        let success = client.attempt().await.unwrap_or_else(|failure| panic!("{name}: {failure}"));
        // kinit is part of the test set-up (scripts/lib/install.sh installs krb5-user); the rare
        // gMSA password holding a line feed cannot go through kinit's stdin.
        if client.has_kinit() {
            assert_ne!(success, CcgSuccess::NoKinit);
            if success == CcgSuccess::PasswordNotTypeable {
                eprintln!("this gMSA password cannot be typed into kinit; no TGT was asked for");
            }
        }
        if success == CcgSuccess::Kerberos {
            eprintln!("{name}: TGT obtained as {}", fixture.gmsa.machine_account());
        }
    }
    let (third, password) = &fixture.users[2];
    let client = mk_ccg(dc, &fixture.gmsa, Arc::new(Mutex::new(mk_secret(dc, third, password))));
    assert_eq!(client.attempt().await.unwrap_err().code(), "ad_managed_password_denied");
    let garbled = mk_ccg(dc, &fixture.gmsa, Arc::new(Mutex::new(SecretString::new("no-backslash:pw"))));
    assert_eq!(garbled.attempt().await.unwrap_err().code(), "format");
}

#[tokio::test]
async fn the_ccg_client_never_fails_while_a_and_b_are_rotated_alternately() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let fixture = mk_rotation_fixture(dc, &directory).await;
    let [(a, a_password), (b, _), _] = &fixture.users;
    let secret = Arc::new(Mutex::new(mk_secret(dc, a, a_password)));
    let client = Arc::new(mk_ccg(dc, &fixture.gmsa, secret.clone()));
    let running = client.clone().spawn_loop(Duration::from_millis(50));

    // The rotation's order: reset the user the secret does not name, then point the secret at
    // it; the other user's password stays valid until the next round resets it.
    for (round, user) in [b, a, b, a].into_iter().enumerate() {
        // Longer than one attempt's bind, so no attempt still holds the value about to expire.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let new_password = directory.rotate_password(&mk_spec(user)).await.unwrap();
        *secret.lock().unwrap() = mk_secret(dc, user, &new_password);
        tracing::info!(round, "secret now names the rotated user");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = running.stop().await;
    assert!(stats.attempts >= 4, "{stats:?}");
    assert_eq!(stats.failures, 0, "{stats:?}");
    if client.has_kinit() && stats.kerberos == 0 {
        // Only the one-in-500 password kinit cannot read from stdin explains no TGT at all.
        assert_eq!(client.attempt().await.unwrap(), CcgSuccess::PasswordNotTypeable, "{stats:?}");
    }
}
