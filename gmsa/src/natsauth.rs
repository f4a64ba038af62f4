//! Who may connect to NATS, and with which permissions: the pure half of the coordinator's auth
//! callout (`coordinator::callout` is the I/O half).
//!
//! A client connects with user `agent:<cluster>` or `operator:<name>` and a password that is a
//! signed, timestamped token ([`token`]): `v1.<unix seconds>.<signature>` over the user name and
//! the time by the principal's key (its enrollment, or its `[[operators]]` key). The callout checks
//! the token ([`check_token`]) and answers with a user JWT signed by the callout's issuer key that
//! carries the principal's permissions ([`agent_permissions`], [`operator_permissions`]) and a
//! short expiry: the server disconnects the client when it expires, and its reconnection asks the
//! callout again — which is how a revocation reaches a running connection.
//!
//! Refuses: a user that is neither form, a token older or newer than the window, one whose
//! signature does not verify with the principal's key.

use crate::signing::{NkeyKind, PublicKey, Purpose, SecretKey, nkey_of, sign_raw};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Value, json};

/// Who a connection claims to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Agent { cluster: String },
    Operator { name: String },
}

impl Principal {
    /// The NATS user name of this principal.
    pub fn user(&self) -> String {
        match self {
            Principal::Agent { cluster } => format!("agent:{cluster}"),
            Principal::Operator { name } => format!("operator:{name}"),
        }
    }

    /// Reads `agent:<cluster>` or `operator:<name>`.
    pub fn parse(user: &str) -> Result<Principal, String> {
        if let Some(cluster) = user.strip_prefix("agent:") {
            if !proto::subjects::is_valid_token(cluster) {
                return Err(format!("user {user:?}: the cluster must be a subject token"));
            }
            return Ok(Principal::Agent { cluster: cluster.to_string() });
        }
        if let Some(name) = user.strip_prefix("operator:")
            && !name.is_empty()
            && proto::subjects::is_valid_token(name)
        {
            return Ok(Principal::Operator { name: name.to_string() });
        }
        Err(format!(
            "user {:?} is neither agent:<cluster> nor operator:<name>",
            user.chars().take(80).collect::<String>()
        ))
    }

    /// The inbox prefix the connection must use (its replies arrive there, and nowhere else).
    pub fn inbox_prefix(&self) -> String {
        match self {
            Principal::Agent { cluster } => format!("_INBOX_{cluster}"),
            Principal::Operator { name } => format!("_INBOX_op_{name}"),
        }
    }
}

/// The password a principal connects with at `now_secs`.
pub fn token(key: &SecretKey, user: &str, now_secs: i64) -> String {
    let time = now_secs.to_string();
    let signature = key.sign(Purpose::Connect, user, time.as_bytes());
    format!("v1.{time}.{}", signature.value)
}

/// Checks a connection password against the principal's key; `window_secs` bounds how far the
/// token's time may be from `now_secs` either way.
pub fn check_token(user: &str, password: &str, key: &PublicKey, now_secs: i64, window_secs: i64) -> Result<(), String> {
    let mut parts = password.splitn(3, '.');
    let (Some("v1"), Some(time), Some(signature)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("the password is not a v1 connection token".into());
    };
    let at: i64 = time.parse().map_err(|_| "the token's time is not a number".to_string())?;
    if at.abs_diff(now_secs) > window_secs.unsigned_abs() {
        return Err(format!("the token was made at {at}, more than {window_secs} s from now ({now_secs})"));
    }
    let key_text = key.to_string();
    crate::signing::verify(&[*key], Some(&key_text), Some(signature), Purpose::Connect, user, time.as_bytes())
        .map(|_| ())
        .map_err(|err| err.to_string())
}

/// Publish and subscribe permissions of a NATS user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

/// What `cluster`'s agent may do: publish its own results, progress, drift, dead letters,
/// artifacts, hello and cursor; read its own commands (its consumer `agent-<cluster>`, name and
/// filter in the subject), results and cursor; receive its own nudges and replies.
pub fn agent_permissions(cluster: &str) -> Permissions {
    let c = cluster;
    let consumer = proto::subjects::agent_consumer(c);
    let publish = vec![
        format!("fleet.result.{c}.*"),
        format!("fleet.progress.{c}.*"),
        format!("fleet.drift.{c}"),
        format!("fleet.dead.{c}"),
        format!("fleet.artifact.{c}.*"),
        format!("$KV.{}.{c}", proto::subjects::AGENTS_BUCKET),
        format!("$KV.{}.{c}", proto::subjects::CURSORS_BUCKET),
        format!("$JS.API.CONSUMER.INFO.{}.{consumer}", proto::subjects::COMMAND_STREAM),
        format!("$JS.API.CONSUMER.CREATE.{}.{consumer}.fleet.cmd.{c}", proto::subjects::COMMAND_STREAM),
        format!("$JS.API.CONSUMER.MSG.NEXT.{}.{consumer}", proto::subjects::COMMAND_STREAM),
        format!("$JS.API.CONSUMER.DELETE.{}.{consumer}", proto::subjects::COMMAND_STREAM),
        format!("$JS.ACK.{}.{consumer}.>", proto::subjects::COMMAND_STREAM),
        format!("$JS.ACK.*.*.{}.{consumer}.>", proto::subjects::COMMAND_STREAM),
        format!("$JS.API.DIRECT.GET.{}.fleet.result.{c}.*", proto::subjects::RESULT_STREAM),
        format!("$JS.API.DIRECT.GET.KV_{b}.$KV.{b}.{c}", b = proto::subjects::CURSORS_BUCKET),
        // The cursor bucket is opened (async-nats reads its stream info); the hello bucket is
        // only written to, so no other stream's info is the agent's to read.
        format!("$JS.API.STREAM.INFO.KV_{}", proto::subjects::CURSORS_BUCKET),
    ];
    let subscribe =
        vec![proto::subjects::wake(c), format!("{}.>", Principal::Agent { cluster: c.into() }.inbox_prefix())];
    Permissions { publish, subscribe }
}

/// What an operator's fleetctl may do: call the control API and read — stream info, direct
/// gets only on the streams fleetctl reads (the KV buckets, the audit log, results and
/// artifacts), and consumers only on the streams it lists (the KV buckets and the audit log).
/// It publishes no command, result or KV write; it reads no command, drift report, dead letter,
/// progress event, rollout log entry or request nonce; and it cannot create, read or delete a
/// consumer on the command, result or drift streams: those hold the agents' own consumers and the
/// coordinator's durables, which a deleted or squatted consumer would make skip commands.
pub fn operator_permissions(name: &str) -> Permissions {
    let mut publish: Vec<String> =
        ["fleet.ctl.>", "$JS.API.INFO", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.NAMES", "$JS.FC.>"]
            .iter()
            .map(ToString::to_string)
            .collect();
    let listed = operator_listed_streams();
    // Read by direct gets only: results (rollout status, plan diffs) and artifacts (diagnostics).
    let read_only = [proto::subjects::RESULT_STREAM, proto::subjects::ARTIFACT_STREAM];
    for stream in listed.iter().map(String::as_str).chain(read_only) {
        publish.push(format!("$JS.API.DIRECT.GET.{stream}"));
        publish.push(format!("$JS.API.DIRECT.GET.{stream}.>"));
    }
    for stream in &listed {
        publish.push(format!("$JS.API.CONSUMER.CREATE.{stream}"));
        publish.push(format!("$JS.API.CONSUMER.CREATE.{stream}.>"));
        for verb in ["MSG.NEXT", "INFO", "DELETE"] {
            publish.push(format!("$JS.API.CONSUMER.{verb}.{stream}.*"));
        }
    }
    let subscribe = vec![format!("{}.>", Principal::Operator { name: name.into() }.inbox_prefix())];
    Permissions { publish, subscribe }
}

/// The streams fleetctl reads through (ordered) consumers: every KV bucket's and the audit log's.
/// None of them holds a durable consumer anyone else depends on.
fn operator_listed_streams() -> Vec<String> {
    use proto::subjects as s;
    let buckets = [
        s::INVENTORY_BUCKET,
        s::AGENTS_BUCKET,
        s::STATE_BUCKET,
        s::ROLLOUTS_BUCKET,
        s::ROLLOUT_INDEX_BUCKET,
        s::ROTATIONS_BUCKET,
        s::ENROLLMENTS_BUCKET,
        s::CURSORS_BUCKET,
        s::LEADER_BUCKET,
    ];
    let mut streams: Vec<String> = buckets.iter().map(|bucket| format!("KV_{bucket}")).collect();
    streams.extend([s::AUDIT_STREAM.to_string(), s::AUDIT_CHECKPOINT_STREAM.to_string()]);
    streams
}

fn encode_jwt(issuer: &SecretKey, claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{body}");
    let signature = sign_raw(issuer, signed.as_bytes());
    format!("{signed}.{signature}")
}

/// A JWT's id: base32 of the SHA-256 of its claims, as the NATS JWT library makes it.
fn jti(claims: &Value) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, claims.to_string().as_bytes());
    data_encoding::BASE32_NOPAD.encode(digest.as_ref())
}

/// The user JWT for `user_nkey` (the server's ephemeral key for this connection), placed in
/// `account`, named `name`, with `permissions`, valid from `now_secs` for `ttl_secs`.
pub fn user_jwt(
    issuer: &SecretKey,
    user_nkey: &str,
    name: &str,
    account: &str,
    permissions: &Permissions,
    now_secs: i64,
    ttl_secs: i64,
) -> String {
    let mut claims = json!({
        "iat": now_secs,
        "exp": now_secs.saturating_add(ttl_secs),
        "iss": nkey_of(&issuer.public(), NkeyKind::Account),
        "sub": user_nkey,
        "name": name,
        "aud": account,
        "nats": {
            "pub": {"allow": permissions.publish},
            "sub": {"allow": permissions.subscribe},
            "subs": -1, "data": -1, "payload": -1,
            "type": "user", "version": 2,
        },
    });
    claims["jti"] = json!(jti(&claims));
    encode_jwt(issuer, &claims)
}

/// The callout's answer to the server `server_id` for `user_nkey`: the user JWT, or the error.
pub fn response_jwt(
    issuer: &SecretKey,
    user_nkey: &str,
    server_id: &str,
    answer: Result<String, String>,
    now_secs: i64,
) -> String {
    let mut nats = json!({"type": "authorization_response", "version": 2});
    match answer {
        Ok(jwt) => nats["jwt"] = json!(jwt),
        Err(error) => nats["error"] = json!(error),
    }
    let mut claims = json!({
        "iat": now_secs,
        "iss": nkey_of(&issuer.public(), NkeyKind::Account),
        "sub": user_nkey,
        "aud": server_id,
        "nats": nats,
    });
    claims["jti"] = json!(jti(&claims));
    encode_jwt(issuer, &claims)
}

/// What the callout needs from the server's authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    pub server_id: String,
    pub user_nkey: String,
    pub user: String,
    pub password: String,
}

/// Reads an authorization request JWT's claims. The request arrives on a subject only the
/// server publishes to (the callout account's `$SYS.REQ.USER.AUTH`), so its signature is not
/// checked here.
pub fn decode_request(jwt: &str) -> Result<AuthRequest, String> {
    let claims = jwt.split('.').nth(1).ok_or("not a JWT")?;
    let bytes = URL_SAFE_NO_PAD.decode(claims.trim_end_matches('=')).map_err(|_| "the claims are not base64url")?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| "the claims are not JSON")?;
    let text = |pointer: &str| value.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string();
    let request = AuthRequest {
        server_id: text("/nats/server_id/id"),
        user_nkey: text("/nats/user_nkey"),
        user: text("/nats/connect_opts/user"),
        password: text("/nats/connect_opts/pass"),
    };
    if request.server_id.is_empty() || request.user_nkey.is_empty() {
        return Err("the request names no server id or user nkey".into());
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_user_key_and_window() {
        let key = SecretKey::from_seed([4; 32]);
        let other = SecretKey::from_seed([5; 32]);
        let password = token(&key, "agent:a", 1000);
        assert_eq!(check_token("agent:a", &password, &key.public(), 1010, 60), Ok(()));
        assert!(check_token("agent:b", &password, &key.public(), 1010, 60).is_err(), "another user");
        assert!(check_token("agent:a", &password, &other.public(), 1010, 60).is_err(), "another key");
        assert!(check_token("agent:a", &password, &key.public(), 1100, 60).unwrap_err().contains("more than 60 s"));
        assert!(check_token("agent:a", "hunter2", &key.public(), 1000, 60).is_err());
        assert!(check_token("agent:a", "v1.x.y", &key.public(), 1000, 60).is_err());
    }

    #[test]
    fn principals_parse_from_their_user_names() {
        assert_eq!(Principal::parse("agent:aks-1"), Ok(Principal::Agent { cluster: "aks-1".into() }));
        assert_eq!(Principal::parse("operator:ann"), Ok(Principal::Operator { name: "ann".into() }));
        for bad in ["aks-1", "agent:a.b", "agent:*", "operator:", "agent:>"] {
            assert!(Principal::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_agents_permissions_name_only_its_own_cluster() {
        let permissions = agent_permissions("a");
        for subject in permissions.publish.iter().chain(&permissions.subscribe) {
            let pinned = subject.contains(".a.")
                || subject.ends_with(".a")
                || subject.starts_with("_INBOX_a.")
                || subject.contains(".agent-a.")
                || subject.ends_with(".agent-a");
            // The one shared subject: the cursor bucket's stream info, which opening it reads.
            let cursor_bucket_info = *subject == format!("$JS.API.STREAM.INFO.KV_{}", proto::subjects::CURSORS_BUCKET);
            assert!(pinned || cursor_bucket_info, "{subject} is not pinned to cluster a");
        }
        assert!(!permissions.publish.iter().any(|s| s.starts_with("fleet.cmd") || s.contains("fleet_state")));
    }

    #[test]
    fn an_operator_reaches_no_consumer_of_the_command_result_or_drift_streams() {
        let permissions = operator_permissions("ann");
        for subject in &permissions.publish {
            for stream in
                [proto::subjects::COMMAND_STREAM, proto::subjects::RESULT_STREAM, proto::subjects::DRIFT_STREAM]
            {
                assert!(
                    !(subject.starts_with("$JS.API.CONSUMER.") && subject.contains(stream)),
                    "{subject} reaches {stream}'s consumers"
                );
            }
            assert!(!subject.contains("CONSUMER.CREATE.>") && !subject.starts_with("$JS.ACK"), "{subject}");
        }
        assert!(permissions.publish.contains(&format!("$JS.API.CONSUMER.CREATE.{}.>", proto::subjects::AUDIT_STREAM)));
    }

    #[test]
    fn an_operator_reads_results_buckets_and_the_audit_log_but_no_command_or_private_stream() {
        let permissions = operator_permissions("ann");
        let direct_gets: Vec<&str> =
            permissions.publish.iter().filter_map(|s| s.strip_prefix("$JS.API.DIRECT.GET.")).collect();
        assert!(!direct_gets.contains(&">"), "every stream is readable: {direct_gets:?}");
        for private in [
            proto::subjects::COMMAND_STREAM,
            proto::subjects::DRIFT_STREAM,
            proto::subjects::DEAD_STREAM,
            proto::subjects::PROGRESS_STREAM,
            proto::subjects::ROLLOUT_LOG_STREAM,
            proto::subjects::NONCE_STREAM,
            proto::subjects::AUDIT_INBOX_STREAM,
        ] {
            assert!(!direct_gets.iter().any(|s| s.split('.').next() == Some(private)), "{private} is readable");
        }
        for read in [proto::subjects::RESULT_STREAM, proto::subjects::ARTIFACT_STREAM, proto::subjects::AUDIT_STREAM] {
            assert!(direct_gets.contains(&format!("{read}.>").as_str()), "{read} is not readable");
        }
        assert!(direct_gets.contains(&format!("KV_{}.>", proto::subjects::INVENTORY_BUCKET).as_str()));
    }

    #[test]
    fn jwts_carry_the_claims_the_server_checks() {
        let issuer = SecretKey::from_seed([6; 32]);
        let user = user_jwt(&issuer, "UABC", "agent:a", "FLEET", &agent_permissions("a"), 100, 60);
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(user.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(
            (claims["sub"].as_str(), claims["aud"].as_str(), claims["exp"].as_i64()),
            (Some("UABC"), Some("FLEET"), Some(160))
        );
        assert!(claims["iss"].as_str().unwrap().starts_with('A'));
        let response = response_jwt(&issuer, "UABC", "NSERVER", Err("no".into()), 100);
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(response.split('.').nth(1).unwrap()).unwrap()).unwrap();
        assert_eq!(claims["nats"]["error"], "no");
        assert_eq!(claims["aud"], "NSERVER");
    }
}
