use super::*;
use proto::command::{Command, EnableGmsa};
use proto::version::SchemaVersion;
use proto::{CommandId, ResultStatus};
use time::macros::datetime;

fn mk_envelope(cluster: &str) -> CommandEnvelope {
    CommandEnvelope {
        schema: SchemaVersion::CURRENT,
        command_id: CommandId("cmd-1".into()),
        rollout_id: None,
        cluster: cluster.into(),
        issued_at: datetime!(2026-11-23 10:00 UTC),
        deadline: datetime!(2026-11-23 11:00 UTC),
        issuer: None,
        command: Command::EnableGmsa(EnableGmsa {
            dns_server: Some("10.0.0.4".into()),
            root_domain: Some("contoso.com".into()),
            mode: proto::Mode::Apply,
        }),
    }
}

fn mk_result() -> CommandResult {
    CommandResult {
        schema: SchemaVersion::CURRENT,
        command_id: CommandId("cmd-1".into()),
        rollout_id: None,
        cluster: "aks-1".into(),
        kind: "enable-gmsa".into(),
        status: ResultStatus::Succeeded,
        steps: vec![],
        attempt: 1,
        finished_at: datetime!(2026-11-23 10:01 UTC),
        agent_version: "test".into(),
        resources: vec![],
    }
}

fn decide_with(envelope: &CommandEnvelope, recorded: Option<&CommandResult>, cursor: &Cursor) -> Action {
    decide(&Inputs {
        sequence: 7,
        cluster: "aks-1",
        envelope: Ok(envelope),
        recorded,
        cursor,
        max_attempts: 3,
        max_age: time::Duration::days(7),
        max_skew: MAX_CLOCK_SKEW,
        now: datetime!(2026-11-23 10:30 UTC),
    })
}

#[test]
fn an_answered_id_is_a_replay_unless_this_very_message_was_interrupted() {
    let result = mk_result();
    assert_eq!(decide_with(&mk_envelope("aks-1"), Some(&result), &Cursor::default()), Action::Replayed);
    let interrupted = cursor_before_execute(&Cursor::default(), 7, "cmd-1", 1);
    assert_eq!(decide_with(&mk_envelope("aks-1"), Some(&result), &interrupted), Action::AlreadyDone);
    let other_message = cursor_before_execute(&Cursor::default(), 6, "cmd-1", 1);
    assert_eq!(decide_with(&mk_envelope("aks-1"), Some(&result), &other_message), Action::Replayed);
}

#[test]
fn commands_issued_too_long_ago_or_in_the_future_are_stale() {
    let mut old = mk_envelope("aks-1");
    old.issued_at = datetime!(2026-11-16 10:00 UTC);
    old.deadline = datetime!(2026-11-30 10:00 UTC);
    let Action::Refuse(refusal) = decide_with(&old, None, &Cursor::default()) else { panic!("not refused") };
    assert_eq!(refusal.code, Code::Stale);
    let mut future = mk_envelope("aks-1");
    future.issued_at = datetime!(2026-11-23 10:36 UTC);
    future.deadline = datetime!(2026-11-23 12:00 UTC);
    let Action::Refuse(refusal) = decide_with(&future, None, &Cursor::default()) else { panic!("not refused") };
    assert_eq!(refusal.code, Code::Stale);
    let mut skewed = mk_envelope("aks-1");
    skewed.issued_at = datetime!(2026-11-23 10:34 UTC);
    assert_eq!(decide_with(&skewed, None, &Cursor::default()), Action::Execute { attempt: 1 });
    assert!(
        stale(datetime!(2026-11-23 10:00 UTC), datetime!(2026-11-23 10:00 UTC), time::Duration::MAX, MAX_CLOCK_SKEW)
            .is_none()
    );
}

#[test]
fn a_fresh_command_is_executed_as_attempt_one() {
    assert_eq!(decide_with(&mk_envelope("aks-1"), None, &Cursor::default()), Action::Execute { attempt: 1 });
}

#[test]
fn a_recorded_result_wins_over_everything() {
    let result = mk_result();
    let interrupted = cursor_before_execute(&Cursor::default(), 7, "cmd-1", 3);
    assert_eq!(decide_with(&mk_envelope("aks-1"), Some(&result), &interrupted), Action::AlreadyDone);
    assert_eq!(decide_with(&mk_envelope("aks-2"), Some(&result), &Cursor::default()), Action::Replayed);
}

#[test]
fn other_major_is_refused() {
    let mut envelope = mk_envelope("aks-1");
    envelope.schema = SchemaVersion { major: 2, minor: 0 };
    let Action::Refuse(refusal) = decide_with(&envelope, None, &Cursor::default()) else { panic!() };
    assert_eq!(refusal.code.as_str(), "unsupported_schema");
}

#[test]
fn invalid_payload_is_refused_naming_the_field() {
    let mut envelope = mk_envelope("aks-1");
    envelope.command = Command::EnableGmsa(EnableGmsa {
        dns_server: Some("x".into()),
        root_domain: Some("contoso.com".into()),
        mode: proto::Mode::Apply,
    });
    let Action::Refuse(refusal) = decide_with(&envelope, None, &Cursor::default()) else { panic!() };
    assert_eq!(refusal.code.as_str(), "invalid_payload");
    assert!(refusal.message.contains("payload.dns_server"), "{}", refusal.message);
}

#[test]
fn wrong_cluster_and_deadline_are_refused() {
    let Action::Refuse(refusal) = decide_with(&mk_envelope("aks-2"), None, &Cursor::default()) else { panic!() };
    assert_eq!(refusal.code.as_str(), "wrong_cluster");
    let mut late = mk_envelope("aks-1");
    late.deadline = datetime!(2026-11-23 10:10 UTC);
    let Action::Refuse(refusal) = decide_with(&late, None, &Cursor::default()) else { panic!() };
    assert_eq!(refusal.code.as_str(), "deadline_exceeded");
}

#[test]
fn crashes_count_attempts_until_exhausted() {
    let envelope = mk_envelope("aks-1");
    let mut cursor = Cursor::default();
    for expected in 1..=3 {
        let Action::Execute { attempt } = decide_with(&envelope, None, &cursor) else { panic!() };
        assert_eq!(attempt, expected);
        cursor = cursor_before_execute(&cursor, 7, "cmd-1", attempt);
    }
    let Action::Refuse(refusal) = decide_with(&envelope, None, &cursor) else { panic!() };
    assert_eq!(refusal.code.as_str(), "attempts_exhausted");
}

#[test]
fn a_handed_back_command_does_not_use_up_an_attempt() {
    let cursor = cursor_before_execute(&Cursor::default(), 7, "cmd-1", 1);
    let back = cursor_handed_back(&cursor);
    assert_eq!(back.in_flight, None);
    assert_eq!(decide_with(&mk_envelope("aks-1"), None, &back), Action::Execute { attempt: 1 });
}

#[test]
fn schema_is_read_from_header_then_body() {
    use proto::decode::declared_schema;
    let body = serde_json::json!({"schema": "2.1"});
    assert_eq!(declared_schema(None, &body).unwrap().unwrap(), SchemaVersion { major: 2, minor: 1 });
    assert_eq!(declared_schema(Some("1.0"), &body).unwrap().unwrap(), SchemaVersion { major: 1, minor: 0 });
    assert!(declared_schema(None, &serde_json::json!({})).is_none());
}

#[test]
fn a_deadline_beyond_the_longest_a_command_may_run_is_refused() {
    let mut envelope = mk_envelope("aks-1");
    envelope.deadline = envelope.issued_at + time::Duration::days(31);
    let Action::Refuse(refusal) = decide_with(&envelope, None, &Cursor::default()) else { panic!() };
    assert_eq!(refusal.code.as_str(), "invalid_payload");
    assert!(refusal.message.starts_with("deadline:"), "{}", refusal.message);
    envelope.deadline = time::OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT);
    assert!(matches!(decide_with(&envelope, None, &Cursor::default()), Action::Refuse(_)));
}

fn mk_step(name: &str, changed: bool) -> StepOutcome {
    let diff = if changed {
        vec![proto::FieldChange { path: format!("/{name}"), before: None, after: Some(true.into()) }]
    } else {
        vec![]
    };
    StepOutcome::from_diff(name, diff, serde_json::json!({"seen": name}))
}

#[test]
fn a_rerun_reports_what_the_first_attempt_changed() {
    // The first attempt changed identity-attach, then the agent died; the second finds it in place.
    let earlier = vec![mk_step("identity-attach", true)];
    let merged = merge_steps(&earlier, vec![mk_step("identity-attach", false), mk_step("vault-grant", true)]);
    assert_eq!(merged.len(), 2);
    assert!(merged[0].is_changed(), "{merged:?}");
    assert_eq!(merged[0].diff, earlier[0].diff);
    assert!(merged[1].is_changed());
    // A step only the earlier attempt reached is kept; nothing earlier changes nothing.
    let merged = merge_steps(&earlier, vec![]);
    assert_eq!(merged, earlier);
    let fresh = vec![mk_step("cluster-update", false)];
    assert_eq!(merge_steps(&[], fresh.clone()), fresh);
}

#[test]
fn recorded_steps_survive_into_the_next_attempt_and_only_of_the_same_command() {
    let cursor = cursor_before_execute(&Cursor::default(), 7, "cmd-1", 1);
    let cursor = cursor_with_step(&cursor, mk_step("identity-attach", true));
    let next = cursor_before_execute(&cursor, 7, "cmd-1", 2);
    assert_eq!(earlier_steps(&next, 7).len(), 1);
    let other = cursor_before_execute(&cursor, 8, "cmd-2", 1);
    assert!(earlier_steps(&other, 8).is_empty());
}
