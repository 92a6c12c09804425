//! The one API error type and its one mapping to an HTTP response.
//!
//! Every failure a handler can meet becomes an [`ApiError`]. An AWS SDK failure
//! (DynamoDB, KMS, SQS) becomes one here, in [`aws_error`], and a Stripe failure in
//! `stripe::stripe_error`: the status a client sees never depends on which handler or
//! which service met the failure.

use std::fmt;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use http::StatusCode;
use serde::Serialize;

/// Every code an error can carry, each once: the stable, machine-readable `code` of an
/// error body, and the HTTP status it answers with. A new one is added here, never written
/// as a string at its use.
macro_rules! error_codes {
    ($($code:ident => $text:literal, $status:ident,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($code,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$code,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$code => $text,)*
                }
            }

            /// The HTTP status an error of this code answers with: the one mapping.
            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$code => StatusCode::$status,)*
                }
            }
        }
    };
}

error_codes! {
    InvalidParameter => "invalid_parameter", BAD_REQUEST,
    InvalidRequest => "invalid_request", BAD_REQUEST,
    Unauthorized => "unauthorized", UNAUTHORIZED,
    Forbidden => "forbidden", FORBIDDEN,
    NotFound => "not_found", NOT_FOUND,
    MethodNotAllowed => "method_not_allowed", METHOD_NOT_ALLOWED,
    ServiceUnavailable => "service_unavailable", SERVICE_UNAVAILABLE,
    RateLimited => "rate_limited", TOO_MANY_REQUESTS,
    StripeError => "stripe_error", BAD_GATEWAY,
    InternalError => "internal_error", INTERNAL_SERVER_ERROR,
    AlreadyExists => "already_exists", CONFLICT,
    ApiKeyExists => "api_key_exists", CONFLICT,
    BackfillInProgress => "backfill_in_progress", CONFLICT,
    ConcurrentUpdate => "concurrent_update", CONFLICT,
    EmailTaken => "email_taken", CONFLICT,
    IdempotencyError => "idempotency_error", BAD_REQUEST,
    IdempotencyInProgress => "idempotency_in_progress", CONFLICT,
    InvalidEvent => "invalid_event", BAD_REQUEST,
    InvalidSignature => "invalid_signature", BAD_REQUEST,
    InvalidStripeKey => "invalid_stripe_key", BAD_REQUEST,
    LastOwner => "last_owner", CONFLICT,
    MemberExists => "member_exists", CONFLICT,
    OwnerRequired => "owner_required", FORBIDDEN,
    ProductDeleted => "product_deleted", CONFLICT,
    ProjectExists => "project_exists", CONFLICT,
    SessionRequired => "session_required", FORBIDDEN,
    StripeNotConnected => "stripe_not_connected", CONFLICT,
    TeamExists => "team_exists", CONFLICT,
    WebhookNotConfigured => "webhook_not_configured", BAD_REQUEST,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure answered to the client as `{"error": "...", "code": "...", "param": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Stable machine-readable code, e.g. `invalid_parameter`; it gives the HTTP status.
    pub code: ErrorCode,
    /// Human readable; always safe to show (no secrets, no internals).
    pub message: String,
    /// The offending parameter, when there is one.
    pub param: Option<String>,
    /// Seconds a client should wait before retrying (429/503).
    pub retry_after: Option<u32>,
    /// The methods a path does allow, for the `Allow` header of a 405.
    pub allow: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<&'a str>,
}

/// An AWS service we call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsService {
    DynamoDb,
    Kms,
    Sqs,
}

impl AwsService {
    const fn name(self) -> &'static str {
        match self {
            AwsService::DynamoDb => "dynamodb",
            AwsService::Kms => "kms",
            AwsService::Sqs => "sqs",
        }
    }

    /// Whether the service refuses a call only for the deployment's state, which an
    /// operator mends while the request stays right: a KMS key disabled, missing or not
    /// ours to use, an SQS queue or permission missing. DynamoDB refuses what we asked
    /// wrongly (a bug of ours).
    const fn refuses_for_its_state(self) -> bool {
        matches!(self, AwsService::Kms | AwsService::Sqs)
    }

    /// What a client is told when the service is busy or out of reach.
    const fn busy(self) -> &'static str {
        match self {
            AwsService::DynamoDb => "The database is busy; retry the request",
            AwsService::Kms => "The key service is unavailable; retry the request",
            AwsService::Sqs => "Could not queue the job; retry the request",
        }
    }
}

/// Error codes that mean "busy, retry" although they come with a 400.
const BUSY_CODES: [&str; 6] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "TransactionInProgressException",
    "RequestThrottled",
];

/// Whether an AWS call failed in a way a retry can mend: a timeout (the SDK's own, or the
/// invocation's deadline), a connection that failed or broke off, the service's own fault
/// (5xx), or throttling.
fn aws_transient<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => {
            let status = err.raw_response().map(|r| r.status());
            status.is_some_and(|s| s.is_server_error() || s.as_u16() == 429)
                || err.code().is_some_and(|code| BUSY_CODES.contains(&code))
        }
    }
}

/// The one mapping of an AWS SDK failure: 503 with `Retry-After` when a retry can mend it
/// ([`aws_transient`]) or an operator can (a refusal for the service's state, KMS's and
/// SQS's); anything else is our own fault, 500. The SDK's detail is logged only.
pub fn aws_error<E>(service: AwsService, err: SdkError<E, HttpResponse>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let transient = aws_transient(&err);
    if transient || service.refuses_for_its_state() {
        tracing::warn!(
            service = service.name(),
            code = err.code().unwrap_or("transport"),
            transient,
            "aws service busy, out of reach or refusing"
        );
        ApiError::unavailable(service.busy())
    } else {
        ApiError::internal(format!("{}: {}", service.name(), DisplayErrorContext(&err)))
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            param: None,
            retry_after: None,
            allow: None,
        }
    }

    /// The HTTP status this error answers with (its code's).
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// 400 for a bad parameter; the message names it.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameter, message).with_param(param)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 405, with the methods `path` does allow (the `Allow` header).
    pub fn method_not_allowed(method: &str, path: &str, allowed: &[&str]) -> Self {
        let mut err = Self::new(
            ErrorCode::MethodNotAllowed,
            format!("Method {method} is not allowed on {path}"),
        );
        err.allow = Some(allowed.join(", "));
        err
    }

    /// 503: a dependency throttled or is briefly unavailable; the client should retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut err = Self::new(ErrorCode::ServiceUnavailable, message);
        err.retry_after = Some(1);
        err
    }

    pub fn rate_limited(message: impl Into<String>) -> Self {
        let mut err = Self::new(ErrorCode::RateLimited, message);
        err.retry_after = Some(1);
        err
    }

    /// 502: Stripe failed or answered something we cannot use.
    pub fn stripe_failed(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::StripeError, message)
    }

    /// 500: our own fault. The message shown to clients stays generic; details go to the log.
    pub fn internal(detail: impl fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::InternalError, "Internal server error")
    }

    pub fn body_json(&self) -> String {
        serde_json::to_string(&ErrorBody {
            error: &self.message,
            code: self.code.as_str(),
            param: self.param.as_deref(),
        })
        .unwrap_or_else(|_| r#"{"error":"Internal server error"}"#.to_owned())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status().as_u16(), self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    #[test]
    fn error_body_is_a_plain_string_with_code_and_param() {
        let err = ApiError::invalid("limit", "limit must be an integer from 1 to 100");
        let body: serde_json::Value = serde_json::from_str(&err.body_json()).unwrap();
        assert_eq!(body["error"], "limit must be an integer from 1 to 100");
        assert_eq!(body["code"], "invalid_parameter");
        assert_eq!(body["param"], "limit");
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn each_code_answers_with_its_one_status() {
        for (code, status) in [
            (ErrorCode::InvalidParameter, 400),
            (ErrorCode::IdempotencyError, 400),
            (ErrorCode::Unauthorized, 401),
            (ErrorCode::SessionRequired, 403),
            (ErrorCode::NotFound, 404),
            (ErrorCode::MethodNotAllowed, 405),
            (ErrorCode::EmailTaken, 409),
            (ErrorCode::ProductDeleted, 409),
            (ErrorCode::LastOwner, 409),
            (ErrorCode::RateLimited, 429),
            (ErrorCode::InternalError, 500),
            (ErrorCode::StripeError, 502),
            (ErrorCode::ServiceUnavailable, 503),
        ] {
            assert_eq!(ApiError::new(code, "x").status().as_u16(), status, "{code}");
        }
        for code in ErrorCode::ALL {
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }

    #[test]
    fn internal_errors_hide_details() {
        let err = ApiError::internal("dynamodb exploded at arn:aws:...");
        assert_eq!(err.message, "Internal server error");
        assert!(!err.body_json().contains("arn:aws"));
    }

    fn answered(status: u16, code: &str) -> SdkError<GetItemError, HttpResponse> {
        let err = GetItemError::generic(ErrorMetadata::builder().code(code).build());
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(err, raw)
    }

    #[test]
    fn aws_failures_a_retry_can_mend_are_503_and_the_rest_500() {
        for (status, code) in [
            (400, "ProvisionedThroughputExceededException"),
            (400, "TransactionConflictException"),
            (400, "ThrottlingException"),
            (500, "InternalServerError"),
            (503, "ServiceUnavailable"),
            (429, "SlowDown"),
        ] {
            let err = aws_error(AwsService::DynamoDb, answered(status, code));
            assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE, "{code}");
            assert_eq!(err.retry_after, Some(1), "{code}");
        }
        let timeout = SdkError::<GetItemError, HttpResponse>::timeout_error("deadline");
        assert_eq!(
            aws_error(AwsService::Kms, timeout).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        for (status, code) in [(400, "ValidationException"), (400, "AccessDeniedException")] {
            let err = aws_error(AwsService::DynamoDb, answered(status, code));
            assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR, "{code}");
            assert_eq!(err.message, "Internal server error");
        }
        // A key or a queue the deployment lacks is mended by an operator, not by the client.
        for service in [AwsService::Kms, AwsService::Sqs] {
            let err = aws_error(service, answered(400, "NotFoundException"));
            assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE, "{service:?}");
            assert_eq!(err.message, service.busy());
        }
    }
}
