//! The one mapping from failures to AWS JSON error responses: `__type`, `message`, status and
//! the `x-amzn-ErrorType` / `x-amzn-ErrorMessage` headers.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use userpool::Error;

use crate::sigv4::SigError;

/// An error as it goes on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct WireError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
}

impl WireError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", message)
    }

    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new("SerializationException", message)
    }

    /// A request over its category's rate (Cognito's request quotas).
    pub fn throttled() -> Self {
        Self::new("TooManyRequestsException", "Rate exceeded")
    }

    pub fn internal() -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "InternalErrorException",
            message: "Internal server error.".into(),
        }
    }
}

/// Domain errors, by variant. Internal faults are logged here and reach the client as a bare
/// InternalErrorException.
impl From<Error> for WireError {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::InvalidParameter(_) => "InvalidParameterException",
            Error::ResourceNotFound(_) => "ResourceNotFoundException",
            Error::UserNotFound => "UserNotFoundException",
            Error::UserNotConfirmed => "UserNotConfirmedException",
            Error::UnsupportedOperation(_) => "UnsupportedOperationException",
            Error::UnsupportedTokenType(_) => "UnsupportedTokenTypeException",
            Error::RefreshTokenReuse(_) => "RefreshTokenReuseException",
            Error::PasswordResetRequired => "PasswordResetRequiredException",
            Error::UsernameExists(_) => "UsernameExistsException",
            Error::AliasExists(_) => "AliasExistsException",
            Error::InvalidPassword(_) => "InvalidPasswordException",
            Error::CodeMismatch | Error::MfaCodeMismatch => "CodeMismatchException",
            Error::SoftwareTokenMfaNotFound(_) => "SoftwareTokenMFANotFoundException",
            Error::EnableSoftwareTokenMfa(_) => "EnableSoftwareTokenMFAException",
            Error::ExpiredCode => "ExpiredCodeException",
            Error::LimitExceeded(_) => "LimitExceededException",
            Error::NotAuthorized(_) => "NotAuthorizedException",
            Error::GroupExists(_) => "GroupExistsException",
            Error::TooManyRequests(_) => "TooManyRequestsException",
            Error::InvalidUserPoolConfiguration(_) => "InvalidUserPoolConfigurationException",
            Error::UnsupportedUserState(_) => "UnsupportedUserStateException",
            Error::CodeDeliveryFailure(_) => "CodeDeliveryFailureException",
            Error::AccessDenied(_) => "AccessDeniedException",
            Error::ScopeDoesNotExist(_) => "ScopeDoesNotExistException",
            Error::InvalidOAuthFlow(_) => "InvalidOAuthFlowException",
            Error::ConcurrentModification(_) => "ConcurrentModificationException",
            Error::Internal(why) => {
                tracing::error!(error = %why, "internal error");
                return WireError::internal();
            }
        };
        WireError::new(kind, e.to_string())
    }
}

impl From<SigError> for WireError {
    fn from(e: SigError) -> Self {
        match e {
            SigError::Missing => WireError::new(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ),
            SigError::Incomplete(m) => WireError::new("IncompleteSignatureException", m),
            SigError::UnknownKey => WireError::new(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ),
            SigError::Mismatch => WireError::new(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS \
                 Secret Access Key and signing method. Consult the service documentation for details.",
            ),
            SigError::Expired(m) | SigError::NotYetCurrent(m) | SigError::WrongScope(m) => {
                WireError::new("InvalidSignatureException", m)
            }
        }
    }
}

impl IntoResponse for WireError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.kind, "message": self.message }).to_string();
        let mut res = (self.status, body).into_response();
        let h = res.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(crate::CONTENT_TYPE),
        );
        if let Ok(v) = HeaderValue::from_str(&format!("{}:", self.kind)) {
            h.insert("x-amzn-ErrorType", v);
        }
        // Header values must be visible ASCII; other messages are only in the body.
        if let Ok(v) = HeaderValue::from_str(&self.message) {
            h.insert("x-amzn-ErrorMessage", v);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_error_has_its_cognito_name_and_status() {
        let table: Vec<(Error, &str, u16)> = vec![
            (Error::invalid("x"), "InvalidParameterException", 400),
            (Error::not_found("x"), "ResourceNotFoundException", 400),
            (Error::UserNotFound, "UserNotFoundException", 400),
            (Error::UserNotConfirmed, "UserNotConfirmedException", 400),
            (
                Error::UnsupportedOperation("x".into()),
                "UnsupportedOperationException",
                400,
            ),
            (
                Error::UnsupportedTokenType("x".into()),
                "UnsupportedTokenTypeException",
                400,
            ),
            (
                Error::PasswordResetRequired,
                "PasswordResetRequiredException",
                400,
            ),
            (
                Error::UsernameExists("x".into()),
                "UsernameExistsException",
                400,
            ),
            (Error::AliasExists("x".into()), "AliasExistsException", 400),
            (
                Error::InvalidPassword("x".into()),
                "InvalidPasswordException",
                400,
            ),
            (Error::CodeMismatch, "CodeMismatchException", 400),
            (Error::ExpiredCode, "ExpiredCodeException", 400),
            (
                Error::LimitExceeded("x".into()),
                "LimitExceededException",
                400,
            ),
            (Error::not_authorized("x"), "NotAuthorizedException", 400),
            (Error::GroupExists("x".into()), "GroupExistsException", 400),
            (
                Error::TooManyRequests("x".into()),
                "TooManyRequestsException",
                400,
            ),
            (
                Error::UnsupportedUserState("x".into()),
                "UnsupportedUserStateException",
                400,
            ),
            (
                Error::CodeDeliveryFailure("x".into()),
                "CodeDeliveryFailureException",
                400,
            ),
            (
                Error::AccessDenied("x".into()),
                "AccessDeniedException",
                400,
            ),
            (
                Error::ScopeDoesNotExist("x".into()),
                "ScopeDoesNotExistException",
                400,
            ),
            (
                Error::InvalidOAuthFlow("x".into()),
                "InvalidOAuthFlowException",
                400,
            ),
            (
                Error::Internal("db down".into()),
                "InternalErrorException",
                500,
            ),
        ];
        for (e, kind, status) in table {
            let w = WireError::from(e);
            assert_eq!((w.kind, w.status.as_u16()), (kind, status));
        }
    }

    #[test]
    fn internal_details_do_not_reach_the_client() {
        let w = WireError::from(Error::Internal("password=hunter2".into()));
        assert!(!w.message.contains("hunter2"));
    }

    #[test]
    fn signature_errors_use_aws_names() {
        assert_eq!(
            WireError::from(SigError::Missing).kind,
            "MissingAuthenticationTokenException"
        );
        assert_eq!(
            WireError::from(SigError::UnknownKey).kind,
            "UnrecognizedClientException"
        );
        assert_eq!(
            WireError::from(SigError::Mismatch).kind,
            "InvalidSignatureException"
        );
    }
}
