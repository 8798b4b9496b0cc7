//! The one error type of the user directory. Each variant is a Cognito exception; the wire layer
//! maps variants to `__type` names in one table (`awsjson::errors`).

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("User does not exist.")]
    UserNotFound,
    #[error("User is not confirmed.")]
    UserNotConfirmed,
    #[error("Password reset required for the user")]
    PasswordResetRequired,
    #[error("{0}")]
    UsernameExists(String),
    #[error("{0}")]
    AliasExists(String),
    #[error("{0}")]
    InvalidPassword(String),
    #[error("Invalid verification code provided, please try again.")]
    CodeMismatch,
    /// A wrong or reused sign-in code (SMS_MFA, SOFTWARE_TOKEN_MFA, EMAIL_OTP).
    #[error("Invalid code or auth state for the user.")]
    MfaCodeMismatch,
    #[error("{0}")]
    SoftwareTokenMfaNotFound(String),
    #[error("{0}")]
    EnableSoftwareTokenMfa(String),
    #[error("Invalid code provided, please request a code again.")]
    ExpiredCode,
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    NotAuthorized(String),
    #[error("{0}")]
    GroupExists(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    InvalidUserPoolConfiguration(String),
    #[error("{0}")]
    UnsupportedUserState(String),
    #[error("{0}")]
    CodeDeliveryFailure(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    ScopeDoesNotExist(String),
    #[error("{0}")]
    InvalidOAuthFlow(String),
    #[error("{0}")]
    ConcurrentModification(String),
    #[error("{0}")]
    UnsupportedOperation(String),
    #[error("{0}")]
    UnsupportedTokenType(String),
    #[error("{0}")]
    RefreshTokenReuse(String),
    /// A fault of the server or its database; the message is for the log, not the client.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidParameter(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::ResourceNotFound(msg.into())
    }
    pub fn not_authorized(msg: impl Into<String>) -> Self {
        Error::NotAuthorized(msg.into())
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) | StoreError::Corrupt(m) => Error::Internal(m),
            StoreError::Conflict(k) => Error::Internal(format!("unexpected conflict on {k:?}")),
        }
    }
}

impl From<vault::VaultError> for Error {
    fn from(e: vault::VaultError) -> Self {
        Error::Internal(e.to_string())
    }
}
