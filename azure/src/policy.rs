//! The adapter's retry policy, plugged into `azure_core`'s pipeline in place of the SDK's own.
//!
//! It runs per call, around the per-try policies (bearer token, Key Vault challenge), so every
//! attempt is re-authorized. Each attempt gets the per-try timeout; the response of a retryable
//! attempt is inspected (a 409 body is buffered to read its ARM error code) and [`decide`]
//! chooses between handing it back and waiting. The SDK's retry is disabled
//! (`RetryOptions::none()`) so there is exactly one retry loop and its rules are ours.

use crate::retry::{Observed, RetryAction, RetrySettings, decide, random_jitter};
use azure_core::http::headers::{HeaderName, Headers};
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{AsyncRawResponse, Context, Request};
use std::sync::Arc;
use std::time::Duration;

/// Marker error carried inside an `azure_core::Error` when an attempt hit the per-try timeout,
/// so the adapter can report [`crate::ErrorKind::Timeout`] rather than a transport error.
#[derive(Debug, thiserror::Error)]
#[error("no response within {0:?}")]
pub(crate) struct AttemptTimedOut(pub Duration);

/// Retries transient failures according to [`RetrySettings`].
#[derive(Debug)]
pub(crate) struct RetryPolicy {
    settings: RetrySettings,
}

impl RetryPolicy {
    pub(crate) fn new(settings: RetrySettings) -> Self {
        RetryPolicy { settings }
    }
}

#[async_trait::async_trait]
impl Policy for RetryPolicy {
    async fn send(&self, ctx: &Context, request: &mut Request, next: &[Arc<dyn Policy>]) -> PolicyResult {
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            if attempt > 1 {
                request.body_mut().reset().await?;
            }
            let sent =
                tokio::time::timeout(self.settings.per_try_timeout, next[0].send(ctx, request, &next[1..])).await;
            let (result, action) = match sent {
                Err(_elapsed) => {
                    let error = azure_core::Error::new(
                        azure_core::error::ErrorKind::Io,
                        AttemptTimedOut(self.settings.per_try_timeout),
                    );
                    (Err(error), decide(&self.settings, attempt, &Observed::Timeout, random_jitter()))
                }
                Ok(Err(error)) => match error.kind() {
                    azure_core::error::ErrorKind::Io | azure_core::error::ErrorKind::Connection => {
                        let action = decide(&self.settings, attempt, &Observed::Transport, random_jitter());
                        (Err(error), action)
                    }
                    _ => return Err(error),
                },
                Ok(Ok(response)) => {
                    let status = u16::from(response.status());
                    // Only a 409's meaning depends on its body; buffer it and hand back an equal response.
                    let (response, error_code, error_message) = if status == 409 {
                        let (status_code, headers, body) = response.deconstruct();
                        let bytes = body.collect().await?;
                        let (code, message) = arm_error_fields(&bytes);
                        (AsyncRawResponse::from_bytes(status_code, headers, bytes), code, message)
                    } else {
                        (response, None, None)
                    };
                    let observed = Observed::Response {
                        status,
                        error_code: error_code.as_deref(),
                        error_message: error_message.as_deref(),
                        retry_after: retry_after(response.headers()),
                    };
                    let action = decide(&self.settings, attempt, &observed, random_jitter());
                    (Ok(response), action)
                }
            };
            match action {
                RetryAction::Return => return result,
                RetryAction::RetryAfter { delay, reason } => {
                    tracing::debug!(
                        url = %sanitized_url(request),
                        attempt,
                        ?reason,
                        delay_ms = delay.as_millis() as u64,
                        "retrying Azure request"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// The request URL without its query string (which could carry a SAS or a `$skiptoken`).
fn sanitized_url(request: &Request) -> String {
    let url = request.url();
    format!("{}://{}{}", url.scheme(), url.host_str().unwrap_or_default(), url.path())
}

/// `error.code` and `error.message` of an ARM / Key Vault error body, when present.
pub(crate) fn arm_error_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Option<Detail>,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { error: Some(detail) }) => (detail.code, detail.message),
        _ => (None, None),
    }
}

/// The server's requested wait: `x-ms-retry-after-ms`, `retry-after-ms`, or `Retry-After`
/// (delta-seconds or an HTTP date).
pub(crate) fn retry_after(headers: &Headers) -> Option<Duration> {
    let millis_headers = [HeaderName::from_static("x-ms-retry-after-ms"), HeaderName::from_static("retry-after-ms")];
    for header in &millis_headers {
        if let Some(millis) = headers.get_optional_str(header).and_then(|value| value.trim().parse::<u64>().ok()) {
            return Some(Duration::from_millis(millis));
        }
    }
    let value = headers.get_optional_str(&HeaderName::from_static("retry-after"))?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = azure_core::time::parse_rfc7231(value).ok()?;
    let now = azure_core::time::OffsetDateTime::now_utc();
    let wait = (when - now).whole_milliseconds().max(0);
    Some(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::{Method, StatusCode};
    use std::sync::Mutex;

    /// One scripted answer: status, headers, body.
    type Answer = (u16, Vec<(&'static str, &'static str)>, &'static str);

    /// Answers each attempt with the next scripted response, counting attempts.
    #[derive(Debug)]
    struct Scripted {
        responses: Mutex<Vec<Answer>>,
        attempts: Mutex<u32>,
        hang_first: bool,
    }

    impl Scripted {
        fn new(mut responses: Vec<Answer>) -> Arc<Self> {
            responses.reverse();
            Arc::new(Scripted { responses: Mutex::new(responses), attempts: Mutex::new(0), hang_first: false })
        }
        fn attempts(&self) -> u32 {
            *self.attempts.lock().unwrap()
        }
    }

    #[async_trait::async_trait]
    impl Policy for Scripted {
        async fn send(&self, _ctx: &Context, _request: &mut Request, _next: &[Arc<dyn Policy>]) -> PolicyResult {
            let attempt = {
                let mut attempts = self.attempts.lock().unwrap();
                *attempts += 1;
                *attempts
            };
            if self.hang_first && attempt == 1 {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            let (status, headers, body) = self.responses.lock().unwrap().pop().expect("script long enough");
            Ok(AsyncRawResponse::from_bytes(StatusCode::from(status), mk_headers(&headers), body.as_bytes().to_vec()))
        }
    }

    fn mk_policy() -> RetryPolicy {
        RetryPolicy::new(RetrySettings {
            max_attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            in_progress_delay: Duration::from_millis(2),
            per_try_timeout: Duration::from_millis(200),
            max_precondition_retries: 1,
        })
    }

    async fn run(policy: &RetryPolicy, script: Arc<Scripted>) -> PolicyResult {
        let mut request = Request::new(Url::parse("https://arm.test/x").unwrap(), Method::Get);
        let next: Vec<Arc<dyn Policy>> = vec![script];
        policy.send(&Context::new(), &mut request, &next).await
    }

    use azure_core::http::Url;

    #[tokio::test]
    async fn throttling_and_in_progress_are_retried_until_success() {
        let in_progress = r#"{"error":{"code":"OperationNotAllowed","message":"Another operation is in progress"}}"#;
        let script = Scripted::new(vec![
            (429, vec![("retry-after-ms", "3")], ""),
            (409, vec![], in_progress),
            (503, vec![], ""),
            (200, vec![], "{}"),
        ]);
        let response = run(&mk_policy(), script.clone()).await.unwrap();
        assert_eq!(u16::from(response.status()), 200);
        assert_eq!(script.attempts(), 4);
    }

    #[tokio::test]
    async fn other_conflicts_come_back_at_once_with_their_body() {
        let exists = r#"{"error":{"code":"RoleAssignmentExists","message":"The role assignment already exists."}}"#;
        let script = Scripted::new(vec![(409, vec![], exists)]);
        let response = run(&mk_policy(), script.clone()).await.unwrap();
        assert_eq!(script.attempts(), 1);
        let body = response.into_body().collect().await.unwrap();
        assert_eq!(arm_error_fields(&body).0.as_deref(), Some("RoleAssignmentExists"));
    }

    #[tokio::test]
    async fn the_budget_bounds_attempts_and_returns_the_last_response() {
        let script = Scripted::new(vec![(429, vec![], ""); 4]);
        let response = run(&mk_policy(), script.clone()).await.unwrap();
        assert_eq!((u16::from(response.status()), script.attempts()), (429, 4));
    }

    #[tokio::test]
    async fn a_hanging_attempt_times_out_and_is_retried() {
        let mut script = Scripted::new(vec![(200, vec![], "{}"), (200, vec![], "{}")]);
        Arc::get_mut(&mut script).unwrap().hang_first = true;
        let response = run(&mk_policy(), script.clone()).await.unwrap();
        assert_eq!((u16::from(response.status()), script.attempts()), (200, 2));
    }

    fn mk_headers(pairs: &[(&'static str, &'static str)]) -> Headers {
        let mut headers = Headers::new();
        for (name, value) in pairs {
            headers.insert(HeaderName::from_static(name), value.to_string());
        }
        headers
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        assert_eq!(retry_after(&mk_headers(&[("retry-after", "7")])), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&mk_headers(&[("retry-after-ms", "250")])), Some(Duration::from_millis(250)));
        let both = mk_headers(&[("x-ms-retry-after-ms", "40"), ("retry-after", "9")]);
        assert_eq!(retry_after(&both), Some(Duration::from_millis(40)));
        assert_eq!(retry_after(&mk_headers(&[])), None);
    }

    #[test]
    fn retry_after_in_the_past_is_zero() {
        let past = mk_headers(&[("retry-after", "Fri, 01 Jan 2021 00:00:00 GMT")]);
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
    }

    #[test]
    fn arm_error_body_fields_are_read() {
        let body = br#"{"error":{"code":"OperationNotAllowed","message":"Another operation is in progress"}}"#;
        let (code, message) = arm_error_fields(body);
        assert_eq!(code.as_deref(), Some("OperationNotAllowed"));
        assert!(message.is_some_and(|m| m.contains("in progress")));
        assert_eq!(arm_error_fields(b"not json"), (None, None));
    }
}
