use super::*;
use crate::command::{Command, CommandId, EnableGmsa};
use crate::outcome::{Change, Mode, StepOutcome};
use crate::result::ResultStatus;
use proptest::prelude::*;
use serde_json::json;
use time::macros::datetime;

fn mk_envelope(command_id: &str) -> CommandEnvelope {
    CommandEnvelope {
        schema: SchemaVersion::CURRENT,
        command_id: CommandId(command_id.into()),
        rollout_id: Some("r1".into()),
        cluster: "aks-1".into(),
        issued_at: datetime!(2026-11-23 10:00 UTC),
        deadline: datetime!(2026-11-23 11:00 UTC),
        issuer: None,
        command: Command::EnableGmsa(EnableGmsa {
            dns_server: Some("10.0.0.4".into()),
            root_domain: Some("contoso.com".into()),
            mode: Mode::Apply,
        }),
    }
}

fn mk_result(cluster: &str, command_id: &str) -> CommandResult {
    CommandResult {
        schema: SchemaVersion::CURRENT,
        command_id: CommandId(command_id.into()),
        rollout_id: None,
        cluster: cluster.into(),
        kind: "enable-gmsa".into(),
        status: ResultStatus::Succeeded,
        steps: vec![],
        attempt: 1,
        finished_at: datetime!(2026-11-23 10:00 UTC),
        agent_version: "t".into(),
        resources: vec![],
    }
}

fn bytes_of(value: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

#[test]
fn a_valid_command_decodes() {
    let envelope = mk_envelope("c1");
    assert_eq!(command(None, &bytes_of(&envelope)), CommandMessage::Valid(Box::new(envelope)));
}

#[test]
fn an_older_builds_body_signature_field_is_ignored_not_refused() {
    // Older builds had a `signature` body field (never set); it is gone, and an envelope that
    // carries one decodes like any with an unknown field.
    let envelope = mk_envelope("c1");
    let mut json = serde_json::to_value(&envelope).unwrap();
    json["signature"] = serde_json::json!("AAAA");
    assert_eq!(command(None, &bytes_of(&json)), CommandMessage::Valid(Box::new(envelope)));
    assert!(!String::from_utf8(bytes_of(&mk_envelope("c1"))).unwrap().contains("signature"));
}

#[test]
fn ids_that_are_not_subject_tokens_are_unanswerable() {
    for bad in ["", "a b", "a.b", "a*", ">", &"x".repeat(64)] {
        let mut json = serde_json::to_value(mk_envelope("c1")).unwrap();
        json["command_id"] = json!(bad);
        match command(None, &serde_json::to_vec(&json).unwrap()) {
            CommandMessage::Unanswerable(refusal) => assert_eq!(refusal.code, Code::InvalidId, "{bad:?}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let no_id = json!({"schema": "1.2", "cluster": "aks-1"});
    assert!(matches!(
        command(None, &bytes_of(&no_id)),
        CommandMessage::Unanswerable(Refusal { code: Code::InvalidId, .. })
    ));
    assert!(matches!(
        command(None, b"\xff not json"),
        CommandMessage::Unanswerable(Refusal { code: Code::UndecodableCommand, .. })
    ));
}

#[test]
fn a_readable_id_gets_a_refusal_with_a_code() {
    let mut json = serde_json::to_value(mk_envelope("c1")).unwrap();
    json["schema"] = json!("2.0");
    let CommandMessage::Refused { head, refusal, .. } = command(None, &serde_json::to_vec(&json).unwrap()) else {
        panic!()
    };
    assert_eq!((head.command_id.as_str(), refusal.code), ("c1", Code::UnsupportedSchema));
    // The header wins over the body.
    let message = command(Some("3.1"), &bytes_of(&mk_envelope("c1")));
    assert!(matches!(message, CommandMessage::Refused { refusal: Refusal { code: Code::UnsupportedSchema, .. }, .. }));
    let mut json = serde_json::to_value(mk_envelope("c1")).unwrap();
    json["deadline"] = json!(12);
    assert!(matches!(
        command(None, &serde_json::to_vec(&json).unwrap()),
        CommandMessage::Refused { refusal: Refusal { code: Code::UndecodableCommand, .. }, .. }
    ));
}

#[test]
fn an_oversized_field_gives_a_bounded_refusal() {
    let mut json = serde_json::to_value(mk_envelope("c1")).unwrap();
    // A string where the schema wants an object: serde quotes the whole string in its message.
    json["command"]["payload"] = json!("9".repeat(900 * 1024));
    let CommandMessage::Refused { refusal, .. } = command(None, &serde_json::to_vec(&json).unwrap()) else { panic!() };
    assert!(refusal.message.len() <= MAX_MESSAGE_BYTES, "{}", refusal.message.len());
    assert!(refusal.message.contains("bytes cut]"), "{}", &refusal.message[refusal.message.len() - 60..]);
}

#[test]
fn bounded_cuts_at_a_char_boundary_and_says_how_much() {
    assert_eq!(bounded("short", 10), "short");
    let text = "é".repeat(100);
    let cut = bounded(&text, 51);
    assert!(cut.len() <= 51 + "… [".len() + 20, "{cut}");
    assert!(cut.ends_with("bytes cut]"), "{cut}");
}

#[test]
fn results_must_match_their_subject() {
    let result = mk_result("aks-1", "c1");
    assert_eq!(super::result(Some(("aks-1", "c1")), &bytes_of(&result)), Ok(result.clone()));
    let err = super::result(Some(("aks-2", "c1")), &bytes_of(&result)).unwrap_err();
    assert_eq!(err.code, Code::UndecodableResult);
    let nameless = mk_result("", "c1");
    assert_eq!(super::result(None, &bytes_of(&nameless)).unwrap_err().code, Code::UndecodableResult);
    assert_eq!(super::result(None, b"garbage").unwrap_err().code, Code::UndecodableResult);
}

#[test]
fn hellos_must_name_their_key_and_a_token() {
    let info = AgentInfo {
        schema: SchemaVersion::CURRENT,
        cluster: "aks-1".into(),
        agent_version: "1".into(),
        capabilities: vec![CommandKind::EnableGmsa],
        labels: Default::default(),
        started_at: datetime!(2026-11-23 10:00 UTC),
        last_seen: datetime!(2026-11-23 10:00 UTC),
    };
    assert_eq!(agent_info("aks-1", &bytes_of(&info)), Ok(info.clone()));
    assert_eq!(agent_info("aks-2", &bytes_of(&info)).unwrap_err().code, Code::InvalidEntry);
    for bad in ["x.y", "a b", ""] {
        let mut claims = info.clone();
        claims.cluster = bad.into();
        assert_eq!(agent_info(bad, &bytes_of(&claims)).unwrap_err().code, Code::InvalidEntry, "{bad:?}");
    }
}

#[test]
fn run_requests_with_a_deadline_out_of_bounds_are_refused() {
    let request = RunRequest {
        schema: SchemaVersion::CURRENT,
        command: Command::DisableGmsa(crate::command::DisableGmsa {}),
        selector: String::new(),
        deadline_secs: 10_000_000_000_000,
        dry_run: false,
        requested_by: None,
    };
    let err = run_request(&bytes_of(&request)).unwrap_err();
    assert_eq!(err.code, Code::InvalidRequest);
    assert!(err.message.contains("deadline_secs"), "{err}");
    let ok = RunRequest { deadline_secs: 60, ..request };
    assert!(run_request(&bytes_of(&ok)).is_ok());
}

// Version skew, one test per wire enum, both directions: a newer writer's unknown variant reaches
// an older reader (this build) and decodes; what this build writes is what an older reader of the
// same major knows (a fixture written by 1.0 decodes here).

#[test]
fn skew_command_kind() {
    let newer: Vec<CommandKind> = serde_json::from_value(json!(["enable-gmsa", "rotate-the-moon"])).unwrap();
    assert_eq!(newer, [CommandKind::EnableGmsa, CommandKind::Unknown]);
    // A hello from a newer agent with a capability this build does not know still decodes.
    let hello = json!({"schema": "1.9", "cluster": "a", "agent_version": "9", "capabilities": ["enable-gmsa", "future-kind"],
        "started_at": "2026-11-23T10:00:00Z", "last_seen": "2026-11-23T10:00:00Z", "added_later": {"x": 1}});
    let info = agent_info("a", &bytes_of(&hello)).unwrap();
    assert_eq!(info.capabilities, [CommandKind::EnableGmsa, CommandKind::Unknown]);
    // A command of a kind this build does not know is answered, not dropped.
    let mut json = serde_json::to_value(mk_envelope("c1")).unwrap();
    json["command"] = json!({"kind": "future-kind", "payload": {}});
    assert!(matches!(
        command(None, &serde_json::to_vec(&json).unwrap()),
        CommandMessage::Refused { refusal: Refusal { code: Code::UnsupportedKind, .. }, .. }
    ));
    // Older direction: every kind this build writes is one the 1.0 names or a later minor's.
    let older: Vec<CommandKind> =
        serde_json::from_value(json!(["enable-gmsa", "disable-gmsa", "grant-identity"])).unwrap();
    assert!(!older.contains(&CommandKind::Unknown));
}

#[test]
fn skew_change_and_result_status() {
    let step: StepOutcome = serde_json::from_value(json!({"step": "x", "change": "rebased"})).unwrap();
    assert_eq!(step.change, Change::Unknown);
    assert!(!step.is_changed() && !step.is_planned());
    let mut json = serde_json::to_value(mk_result("aks-1", "c1")).unwrap();
    json["status"] = json!("cancelled");
    json["steps"] = json!([{"step": "x", "change": "rebased"}]);
    let result = super::result(Some(("aks-1", "c1")), &serde_json::to_vec(&json).unwrap()).unwrap();
    assert_eq!(result.status, ResultStatus::Unknown);
    assert!(!result.status.is_success());
    // A result as schema 1.0 wrote it (no resources, no planned) decodes here.
    let v1_0 = json!({"schema": "1.0", "command_id": "c1", "cluster": "aks-1", "kind": "enable-gmsa", "status": "failed",
        "code": "x", "message": "y", "steps": [{"step": "cluster-update", "change": "unchanged"}], "attempt": 1,
        "finished_at": "2026-11-23T10:00:00Z", "agent_version": "0.1.0"});
    let old = super::result(None, &bytes_of(&v1_0)).unwrap();
    assert_eq!(old.status, ResultStatus::Failed { code: "x".into(), message: "y".into() });
}

#[test]
fn skew_mode_refuses_what_it_does_not_know() {
    let mode: Mode = serde_json::from_value(json!("plan-harder")).unwrap();
    assert_eq!(mode, Mode::Unknown);
    assert!(!mode.applies());
    let payload = json!({"spec_name": "s", "vault": {"subscription_id": "00000000-0000-0000-0000-000000000001",
        "resource_group": "rg", "name": "kv1"}, "identity": {"type": "kubelet"}, "mode": "plan-harder"});
    let teardown: crate::command::Teardown = serde_json::from_value(payload).unwrap();
    let err = teardown.validate().unwrap_err();
    assert_eq!(err.field, "payload.mode");
}

#[test]
fn skew_identity_choice_refuses_what_it_does_not_know() {
    let choice: crate::command::IdentityChoice =
        serde_json::from_value(json!({"type": "workload-federated", "issuer": "x"})).unwrap();
    assert_eq!(choice, crate::command::IdentityChoice::Unknown);
    let grant: crate::command::GrantIdentity = serde_json::from_value(json!({"vault": {"subscription_id":
        "00000000-0000-0000-0000-000000000001", "resource_group": "rg", "name": "kv1"},
        "identity": {"type": "workload-federated"}}))
    .unwrap();
    assert_eq!(grant.validate().unwrap_err().field, "payload.identity.type");
    let old: crate::command::IdentityChoice = serde_json::from_value(json!({"type": "kubelet"})).unwrap();
    assert_eq!(old, crate::command::IdentityChoice::Kubelet);
}

#[test]
fn skew_shared_resource_check_status_and_run_reply() {
    let resource: crate::resources::SharedResource =
        serde_json::from_value(json!({"type": "certificate", "id": "x"})).unwrap();
    assert_eq!(resource, crate::resources::SharedResource::Unknown);
    let check: crate::report::CheckStatus = serde_json::from_value(json!("flaky")).unwrap();
    assert_eq!(check, crate::report::CheckStatus::Unknown);
    let reply: crate::control::RunReply = serde_json::from_value(json!({"outcome": "queued", "ticket": 3})).unwrap();
    assert_eq!(reply, crate::control::RunReply::Unknown);
    // An older coordinator's reply (no skipped or invalid lists) decodes.
    let old: crate::control::RunReply =
        serde_json::from_value(json!({"outcome": "accepted", "rollout_id": "r", "dry_run": false, "targets": []}))
            .unwrap();
    assert!(matches!(old, crate::control::RunReply::Accepted { .. }));
}

// Fuzzing: every decoder over arbitrary bytes and over valid messages with one byte changed,
// bounded in count (PROPTEST_CASES raises it for a longer run). None may panic; refusals stay
// bounded.

fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    (0..len, any::<u8>(), prop::bool::ANY).prop_map(move |(at, byte, truncate)| {
        let mut bytes = valid.clone();
        if truncate {
            bytes.truncate(at);
        } else {
            bytes[at] = byte;
        }
        bytes
    })
}

fn inputs(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![prop::collection::vec(any::<u8>(), 0..512), mutated(valid)]
}

fn check_refusal(refusal: &Refusal) -> Result<(), TestCaseError> {
    prop_assert!(refusal.message.len() <= MAX_MESSAGE_BYTES + 64, "{}", refusal.message.len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_command(bytes in inputs(bytes_of(&mk_envelope("c1"))), header in prop::option::of("[0-9.]{0,5}")) {
        match command(header.as_deref(), &bytes) {
            CommandMessage::Valid(envelope) => prop_assert!(is_valid_token(envelope.command_id.as_str())),
            CommandMessage::Refused { head, refusal, .. } => {
                prop_assert!(is_valid_token(head.command_id.as_str()));
                check_refusal(&refusal)?;
            }
            CommandMessage::Unanswerable(refusal) => check_refusal(&refusal)?,
        }
    }

    #[test]
    fn fuzz_result(bytes in inputs(bytes_of(&mk_result("aks-1", "c1")))) {
        match super::result(Some(("aks-1", "c1")), &bytes) {
            Ok(result) => prop_assert_eq!(result.cluster.as_str(), "aks-1"),
            Err(refusal) => check_refusal(&refusal)?,
        }
    }

    #[test]
    fn fuzz_agent_info(bytes in inputs(br#"{"schema":"1.2","cluster":"a","agent_version":"1","capabilities":["verify"],"started_at":"2026-11-23T10:00:00Z","last_seen":"2026-11-23T10:00:00Z"}"#.to_vec())) {
        match agent_info("a", &bytes) {
            Ok(info) => prop_assert_eq!(info.cluster.as_str(), "a"),
            Err(refusal) => check_refusal(&refusal)?,
        }
    }

    #[test]
    fn fuzz_run_request(bytes in inputs(br#"{"schema":"1.2","command":{"kind":"disable-gmsa","payload":{}},"deadline_secs":60}"#.to_vec())) {
        match run_request(&bytes) {
            Ok(request) => prop_assert!(request.deadline_secs >= 1 && request.deadline_secs <= crate::control::MAX_DEADLINE_SECS),
            Err(refusal) => check_refusal(&refusal)?,
        }
    }
}
