//! The write guards against the real DC: every refused account class (RID below 1000 and
//! isCriticalSystemObject set in the database with the relax control, as only the DC could), each refusal naming the
//! account and the rule, and the account's password untouched afterwards (it still binds, or its
//! `pwdLastSet` is unchanged for accounts that cannot bind); claiming an unmarked user; the
//! gMSA spec refusals.

use super::*;
use ad::{Ownership, WriteRule};

/// A user made outside gmsa-fleet (no marker) with a known password, via samba-tool on the DC.
fn mk_foreign_user(dc: &SambaDc, name: &str) -> String {
    let password = format!("Kn0wn!{}", unique_name("p"));
    let output = dc.samba_tool(&["user", "create", name, &password]).unwrap();
    assert!(output.status.success(), "samba-tool user create: {}", String::from_utf8_lossy(&output.stderr));
    password
}

fn samba_tool_ok(dc: &SambaDc, args: &[&str]) {
    let output = dc.samba_tool(args).unwrap();
    assert!(output.status.success(), "samba-tool {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

fn upn(dc: &SambaDc, name: &str) -> String {
    format!("{name}@{}", dc.dns_domain())
}

fn pwd_last_set(dc: &SambaDc, name: &str) -> String {
    ldb_value(dc, &dc.base_dn(), "sub", &format!("(sAMAccountName={name})"), "pwdLastSet")
}

fn marker_of(dc: &SambaDc, name: &str) -> Vec<String> {
    dc.ldbsearch(&dc.base_dn(), "sub", &format!("(sAMAccountName={name})"), &["adminDescription"])
        .unwrap()
        .into_iter()
        .map(|(_, value)| value)
        .collect()
}

/// Asserts a refusal of `account` by `rule` whose message names both, and returns the message.
fn assert_refused<T: std::fmt::Debug>(result: Result<T, AdError>, account: &str, rule: WriteRule) -> String {
    let error = result.expect_err("the write is refused");
    let message = error.to_string();
    assert_eq!(error.code(), "ad_write_refused", "{message}");
    assert_eq!(error.write_rule(), Some(rule), "{message}");
    assert!(message.contains(account), "the refusal names {account}: {message}");
    assert!(message.contains(rule.code()), "the refusal names the rule: {message}");
    message
}

async fn set_attribute(dc: &SambaDc, name: &str, attribute: &str, value: &str) {
    let mut admin = raw_admin(dc).await;
    let dn = format!("CN={name},CN=Users,{}", dc.base_dn());
    let mods = vec![ldap3::Mod::Replace(attribute, std::collections::HashSet::from([value]))];
    admin.modify(&dn, mods).await.unwrap().success().unwrap();
}

#[tokio::test]
async fn an_unmarked_user_is_not_reset() {
    let (dc, _shared) = shared_dc().await;
    let name = unique_name("gu");
    let password = mk_foreign_user(dc, &name);

    assert_refused(mk_directory(dc).rotate_password(&mk_spec(&name)).await, &name, WriteRule::NotMarked);
    raw_bind(dc, &upn(dc, &name), &password).await.expect("the old password still binds");
    assert!(marker_of(dc, &name).is_empty(), "nothing was written");
}

#[tokio::test]
async fn a_user_marked_for_another_credential_is_neither_reset_nor_adopted() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let name = unique_name("go");
    let password = mk_user(&directory, &name).await;
    let other = UserSpec::new(AccountName::new(&name).unwrap(), "kv/someone-else").unwrap();

    assert_refused(directory.rotate_password(&other).await, &name, WriteRule::OtherCredential);
    assert_refused(directory.ensure_user(&other).await, &name, WriteRule::OtherCredential);
    assert_refused(directory.claim_user(&other, Mode::Apply).await, &name, WriteRule::OtherCredential);
    raw_bind(dc, &upn(dc, &name), password.expose()).await.expect("the old password still binds");
    assert_eq!(marker_of(dc, &name), [format!("gmsa-fleet credential=kv/{name}")]);
}

#[tokio::test]
async fn administrator_guest_and_krbtgt_are_never_reset() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let before: Vec<String> = ["Guest", "krbtgt"].iter().map(|name| pwd_last_set(dc, name)).collect();
    for name in ["Administrator", "Guest", "krbtgt"] {
        // Even with the marker a reset would need: the built-in rule comes first.
        let message = assert_refused(directory.rotate_password(&mk_spec(name)).await, name, WriteRule::BuiltInAccount);
        assert!(message.contains(&format!("CN={name},CN=Users")), "the DN is named: {message}");
        assert_refused(directory.claim_user(&mk_spec(name), Mode::Apply).await, name, WriteRule::BuiltInAccount);
    }
    raw_bind(dc, &dc.admin_principal(), dc.admin_password()).await.expect("Administrator's password still binds");
    let after: Vec<String> = ["Guest", "krbtgt"].iter().map(|name| pwd_last_set(dc, name)).collect();
    assert_eq!(before, after, "Guest's and krbtgt's passwords were not set");
}

#[tokio::test]
async fn a_protected_user_with_admin_count_is_not_reset() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let name = unique_name("ga");
    let password = mk_user(&directory, &name).await;
    set_attribute(dc, &name, "adminCount", "1").await;

    assert_refused(directory.rotate_password(&mk_spec(&name)).await, &name, WriteRule::AdminCount);
    raw_bind(dc, &upn(dc, &name), password.expose()).await.expect("the old password still binds");
}

#[tokio::test]
async fn a_member_of_domain_admins_through_a_nested_group_is_not_reset() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let name = unique_name("gd");
    let password = mk_user(&directory, &name).await;
    // user ∈ inner ∈ outer ∈ Domain Admins: found through tokenGroups, not by the group's name.
    let (inner, outer) = (unique_name("gi"), unique_name("gx"));
    for group in [&inner, &outer] {
        samba_tool_ok(dc, &["group", "add", group]);
    }
    samba_tool_ok(dc, &["group", "addmembers", "Domain Admins", &outer]);
    samba_tool_ok(dc, &["group", "addmembers", &outer, &inner]);
    samba_tool_ok(dc, &["group", "addmembers", &inner, &name]);

    let message = assert_refused(directory.rotate_password(&mk_spec(&name)).await, &name, WriteRule::PrivilegedGroup);
    assert!(message.contains(&format!("{}-512", dc.domain_sid())), "names Domain Admins' SID: {message}");
    raw_bind(dc, &upn(dc, &name), password.expose()).await.expect("the old password still binds");
    assert_refused(directory.claim_user(&mk_spec(&name), Mode::Apply).await, &name, WriteRule::PrivilegedGroup);
}

#[tokio::test]
async fn a_critical_system_object_is_not_reset() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let name = unique_name("gc");
    let password = mk_user(&directory, &name).await;
    // isCriticalSystemObject is system-only: set it in the database with the relax control, as
    // the DC does for its own objects.
    let ldif = format!(
        "dn: CN={name},CN=Users,{}\nchangetype: modify\nreplace: isCriticalSystemObject\nisCriticalSystemObject: TRUE\n",
        dc.base_dn()
    );
    ldb_relaxed(dc, "ldbmodify", &name, &ldif);

    assert_refused(directory.rotate_password(&mk_spec(&name)).await, &name, WriteRule::CriticalSystemObject);
    raw_bind(dc, &upn(dc, &name), password.expose()).await.expect("the old password still binds");
}

/// Runs `ldbmodify`/`ldbadd` with the relax control on the DC's database (system-only attributes).
fn ldb_relaxed(dc: &SambaDc, tool: &str, name: &str, ldif: &str) {
    let ldif_path = dc.dir().join(format!("{name}-{tool}.ldif"));
    std::fs::write(&ldif_path, ldif).unwrap();
    let output = std::process::Command::new(tool)
        .arg("-H")
        .arg(dc.sam_ldb())
        .arg("--controls=relax:0")
        .arg(&ldif_path)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{tool}: {}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test]
async fn a_marked_user_with_a_rid_below_1000_is_not_reset() {
    let (dc, _shared) = shared_dc().await;
    let name = unique_name("gr");
    // Not a built-in name, not critical, marked for its credential: only the RID (997) is wrong.
    // AD never allocates such a RID to a new account; the database accepts it with relax.
    let ldif = format!(
        "dn: CN={name},CN=Users,{base}\nobjectClass: user\nsAMAccountName: {name}\nobjectSid: {sid}-997\n\
         adminDescription: gmsa-fleet credential=kv/{name}\n",
        base = dc.base_dn(),
        sid = dc.domain_sid()
    );
    ldb_relaxed(dc, "ldbadd", &name, &ldif);
    let password = format!("Kn0wn!{}", unique_name("p"));
    samba_tool_ok(dc, &["user", "setpassword", &name, &format!("--newpassword={password}")]);
    samba_tool_ok(dc, &["user", "enable", &name]);

    let message = assert_refused(mk_directory(dc).rotate_password(&mk_spec(&name)).await, &name, WriteRule::LowRid);
    assert!(message.contains("RID 997"), "{message}");
    raw_bind(dc, &upn(dc, &name), &password).await.expect("the old password still binds");
}

#[tokio::test]
async fn an_unmarked_user_is_reported_then_claimed_then_rotatable() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let name = unique_name("gl");
    let password = mk_foreign_user(dc, &name);
    let spec = mk_spec(&name);

    // ensure_user reports it and writes nothing.
    let ensured = directory.ensure_user(&spec).await.unwrap();
    assert_eq!((ensured.ownership, ensured.outcome.change), (Ownership::Unmarked, Change::Unchanged));
    assert!(ensured.new_password.is_none());
    assert!(marker_of(dc, &name).is_empty(), "ensure_user never marks an existing account");

    // A dry run plans the marker and writes nothing; the claim writes it once.
    let planned = directory.claim_user(&spec, Mode::DryRun).await.unwrap();
    assert_eq!(planned.change, Change::Planned);
    assert_eq!(planned.diff.len(), 1, "{:?}", planned.diff);
    assert_eq!(planned.diff[0].path, "/adminDescription");
    assert!(marker_of(dc, &name).is_empty(), "a dry run writes nothing");
    let claimed = directory.claim_user(&spec, Mode::Apply).await.unwrap();
    assert_eq!((claimed.step.as_str(), claimed.change), ("ad-user-claim", Change::Changed));
    assert_eq!(claimed.diff, planned.diff);
    assert_eq!(marker_of(dc, &name), [format!("gmsa-fleet credential=kv/{name}")]);
    assert_eq!(directory.claim_user(&spec, Mode::Apply).await.unwrap().change, Change::Unchanged);
    raw_bind(dc, &upn(dc, &name), &password).await.expect("claiming does not touch the password");

    // Now it is ours: reported so, and its password can be rotated.
    assert_eq!(directory.ensure_user(&spec).await.unwrap().ownership, Ownership::Ours);
    let rotated = directory.rotate_password(&spec).await.unwrap();
    raw_bind(dc, &upn(dc, &name), rotated.expose()).await.expect("the new password binds");

    // A user whose adminDescription someone else uses is not claimed (it would be overwritten).
    let noted = unique_name("gn");
    mk_foreign_user(dc, &noted);
    set_attribute(dc, &noted, "adminDescription", "owned by the payroll team").await;
    assert_refused(directory.claim_user(&mk_spec(&noted), Mode::Apply).await, &noted, WriteRule::NotMarked);
    assert_eq!(marker_of(dc, &noted), ["owned by the payroll team"]);
}

#[tokio::test]
async fn gmsa_specs_are_refused_by_field_before_anything_is_written() {
    let (dc, _shared) = shared_dc().await;
    let directory = mk_directory(dc);
    let user = unique_name("gs");
    mk_user(&directory, &user).await;
    let name = unique_name("gg");
    let good = mk_gmsa_spec(dc, &name, &[&user]);
    let cases = [
        ("dns_host_name", GmsaSpec { dns_host_name: String::new(), ..good.clone() }),
        ("dns_host_name", GmsaSpec { dns_host_name: "not a host".to_string(), ..good.clone() }),
        ("password_interval_days", GmsaSpec { password_interval_days: 0, ..good.clone() }),
        (
            "password_interval_days",
            GmsaSpec { password_interval_days: ad::MAX_PASSWORD_INTERVAL_DAYS + 1, ..good.clone() },
        ),
        (
            "allowed_principals",
            GmsaSpec { allowed_principals: vec![AccountName::new(&user).unwrap(); 2], ..good.clone() },
        ),
    ];
    for (expected_field, spec) in cases {
        for mode in [Mode::Apply, Mode::DryRun] {
            match directory.ensure_gmsa_in(&spec, mode).await {
                Err(error @ AdError::InvalidSpec { field, .. }) => {
                    assert_eq!(field, expected_field, "{error}");
                    assert_eq!(error.code(), "ad_invalid_spec");
                }
                other => panic!("expected InvalidSpec for {expected_field}, got {other:?}"),
            }
        }
    }
    let filter = format!("(sAMAccountName={name}$)");
    assert!(dc.ldbsearch(&dc.base_dn(), "sub", &filter, &["cn"]).unwrap().is_empty(), "no gMSA was created");
    assert_eq!(directory.ensure_gmsa(&good).await.unwrap().change, Change::Changed, "the valid spec works");
}
