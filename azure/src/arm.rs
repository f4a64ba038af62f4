//! A thin Resource Manager client on `azure_core`'s pipeline: JSON in, JSON out, typed errors.
//!
//! Pipeline: client request id + user agent (azure_core) → [`RetryPolicy`] (ours) → bearer
//! token for `{arm}/.default` (azure_core) → logging → our reqwest transport. Responses come
//! back whatever their status; [`ArmResponse::into_success`] turns a non-2xx into an
//! [`Error`] that names the operation, the resource and the ARM error code and message.

use crate::error::{Error, ErrorKind, Operation, kind_for_status};
use crate::policy::{AttemptTimedOut, RetryPolicy, arm_error_fields};
use crate::retry::RetrySettings;
use azure_core::credentials::TokenCredential;
use azure_core::http::headers::{HeaderName, Headers};
use azure_core::http::policies::Policy;
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::{
    ClientOptions, Context, Method, Pipeline, PipelineSendOptions, Request, RetryOptions, Transport, Url,
};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// A Resource Manager response, any status.
#[derive(Debug)]
pub(crate) struct ArmResponse {
    pub status: u16,
    pub headers: Headers,
    pub body: azure_core::Bytes,
}

impl ArmResponse {
    /// The body as JSON (`Null` when empty).
    pub fn json_value(&self, operation: Operation, resource: &str) -> Result<serde_json::Value, Error> {
        if self.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|error| {
            Error::new(operation, resource, ErrorKind::Decode, format!("response is not JSON: {error}"))
        })
    }

    /// The body as a typed model.
    pub fn json<T: DeserializeOwned>(&self, operation: Operation, resource: &str) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|error| {
            Error::new(operation, resource, ErrorKind::Decode, format!("unexpected response body: {error}"))
        })
    }

    /// The ARM `error.code` of a failed response.
    pub fn error_code(&self) -> Option<String> {
        arm_error_fields(&self.body).0
    }

    /// A header's value.
    pub fn header(&self, name: &'static str) -> Option<&str> {
        self.headers.get_optional_str(&HeaderName::from_static(name))
    }

    /// `Ok(self)` for 2xx; otherwise the typed error for `operation` on `resource`.
    pub fn into_success(self, operation: Operation, resource: &str) -> Result<ArmResponse, Error> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        Err(self.to_error(operation, resource))
    }

    /// The typed error this (failed) response stands for.
    pub fn to_error(&self, operation: Operation, resource: &str) -> Error {
        let (code, message) = arm_error_fields(&self.body);
        let code = code.unwrap_or_default();
        let kind = kind_for_status(self.status, &code);
        let detail = format!("HTTP {} {}: {}", self.status, code, message.unwrap_or_default());
        Error::new(operation, resource, kind, detail)
    }
}

/// Resource Manager over one pipeline.
#[derive(Debug, Clone)]
pub(crate) struct ArmClient {
    pipeline: Pipeline,
    endpoint: Url,
}

impl ArmClient {
    pub fn new(
        endpoint: &str,
        scope: String,
        credential: Arc<dyn TokenCredential>,
        transport: Transport,
        retry: RetrySettings,
    ) -> Result<Self, Error> {
        let endpoint = Url::parse(endpoint.trim_end_matches('/')).map_err(|error| {
            Error::new(Operation::Connect, endpoint, ErrorKind::Config, format!("invalid ARM endpoint: {error}"))
        })?;
        let options =
            ClientOptions { transport: Some(transport), retry: RetryOptions::none(), ..ClientOptions::default() };
        let retry_policy: Arc<dyn Policy> = Arc::new(RetryPolicy::new(retry));
        let auth_policy: Arc<dyn Policy> = Arc::new(BearerTokenAuthorizationPolicy::new(credential, vec![scope]));
        let pipeline = Pipeline::new(
            option_env!("CARGO_PKG_NAME"),
            option_env!("CARGO_PKG_VERSION"),
            options,
            vec![retry_policy],
            vec![auth_policy],
            None,
        );
        Ok(ArmClient { pipeline, endpoint })
    }

    /// The URL of an ARM path (`/subscriptions/...`) with `api-version`.
    pub fn url(&self, path: &str, api_version: &str) -> Url {
        let mut url = self.endpoint.clone();
        url.set_path(path);
        url.query_pairs_mut().append_pair("api-version", api_version);
        url
    }

    /// An absolute URL the service handed out (LRO status, `Location`, `nextLink`).
    pub fn absolute(&self, operation: Operation, resource: &str, href: &str) -> Result<Url, Error> {
        Url::parse(href).or_else(|_| self.endpoint.join(href)).map_err(|error| {
            Error::new(operation, resource, ErrorKind::Decode, format!("bad URL {href:?} from service: {error}"))
        })
    }

    /// Sends one request (retries are inside the pipeline) and returns the response, any status.
    pub async fn send(
        &self,
        operation: Operation,
        resource: &str,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        if_match: Option<&str>,
    ) -> Result<ArmResponse, Error> {
        let mut request = Request::new(url, method);
        request.insert_header("accept", "application/json");
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body).map_err(|error| {
                Error::new(operation, resource, ErrorKind::Validation, format!("body not serializable: {error}"))
            })?;
            request.insert_header("content-type", "application/json");
            request.set_body(bytes);
        }
        if let Some(etag) = if_match {
            request.insert_header("if-match", etag.to_string());
        }
        let options = PipelineSendOptions { skip_checks: true, ..PipelineSendOptions::default() };
        let response = self
            .pipeline
            .send(&Context::new(), &mut request, Some(options))
            .await
            .map_err(|error| transport_error(operation, resource, error))?;
        let (status, headers, body) = response.deconstruct();
        Ok(ArmResponse { status: u16::from(status), headers, body: body.into() })
    }

    /// `GET` of an ARM path.
    pub async fn get(&self, operation: Operation, resource: &str, api_version: &str) -> Result<ArmResponse, Error> {
        self.send(operation, resource, Method::Get, self.url(resource, api_version), None, None).await
    }
}

/// Classifies a pipeline error (no response at all).
fn transport_error(operation: Operation, resource: &str, error: azure_core::Error) -> Error {
    if let Some(timed_out) = error.downcast_ref::<AttemptTimedOut>() {
        let detail = format!("every attempt timed out ({timed_out})");
        return Error::with_source(operation, resource, ErrorKind::Timeout, detail, error);
    }
    Error::from_sdk(operation, resource, error)
}
