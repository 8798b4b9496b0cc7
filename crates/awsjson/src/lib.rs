//! The AWS JSON 1.1 front end of the user directory: `POST /` with
//! `X-Amz-Target: AWSCognitoIdentityProviderService.<Action>`, SigV4 verification of the
//! IAM-authorised actions, request decoding, and the one mapping of errors to AWS's shape.
//!
//! Access is a type: administrator actions receive an [`AdminGrant`], which only a verified
//! signature produces here; public actions receive no grant at all.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod account;
mod auth;
pub mod errors;
mod input;
mod mfa;
mod pools;
pub mod quotas;
mod shapes;
pub mod sigv4;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use time::OffsetDateTime;
use userpool::{AdminGrant, Clock, Directory};

use crate::errors::WireError;

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";
/// How far a signed request's time may be from the server's: SigV4's ±15 minutes.
const SIGNATURE_WINDOW_S: i64 = 15 * 60;

/// An access key allowed to call the administrator actions, optionally only on some pools.
#[derive(Clone)]
pub struct AdminKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub pools: Option<Vec<String>>,
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminKey")
            .field("access_key_id", &self.access_key_id)
            .field("pools", &self.pools)
            .finish_non_exhaustive()
    }
}

pub struct Api {
    pub directory: Arc<Directory>,
    pub keys: Vec<AdminKey>,
    pub clock: Arc<dyn Clock>,
    /// The region of new pools when a request's signature names none.
    pub region: String,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Cognito's request-rate quotas by category (none unless configured).
    pub quotas: quotas::Quotas,
}

/// `POST /` and its CORS preflight.
pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route("/", post(handle).options(preflight))
        .with_state(api)
}

const ALLOW_HEADERS: &str = "content-type, x-amz-target, x-amz-user-agent, cache-control, authorization, \
     x-amz-date, x-amz-security-token, x-amz-content-sha256, amz-sdk-invocation-id, amz-sdk-request";
const EXPOSE_HEADERS: &str = "x-amzn-RequestId, x-amzn-ErrorType, x-amzn-ErrorMessage, Date";

/// The CORS headers browsers need on every answer (JWKS and discovery documents too).
pub fn add_cors(headers: &mut HeaderMap, origin: Option<&HeaderValue>) {
    let allow = origin
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("*"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
}

async fn preflight(headers: HeaderMap) -> Response {
    let mut res = StatusCode::OK.into_response();
    let h = res.headers_mut();
    add_cors(h, headers.get(header::ORIGIN));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    res
}

async fn handle(State(api): State<Arc<Api>>, req: Request) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut res = match api.serve(req).await {
        Ok(body) => {
            let text = shapes::prune(body).to_string();
            let mut res = (StatusCode::OK, text).into_response();
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            res
        }
        Err(e) => e.into_response(),
    };
    add_cors(res.headers_mut(), origin.as_ref());
    res
}

impl Api {
    async fn serve(&self, req: Request) -> Result<serde_json::Value, WireError> {
        let (parts, body) = req.into_parts();
        let action = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.strip_prefix(TARGET_PREFIX))
            .ok_or_else(|| {
                WireError::new(
                    "UnknownOperationException",
                    "Missing or unknown X-Amz-Target.",
                )
            })?
            .to_string();
        let body = self.read_body(&parts.headers, body).await?;
        if let Some(out) = self.public(&action, &body).await {
            return out;
        }
        let grant = self.verify_admin(&parts.method, &parts.uri, &parts.headers, &body)?;
        self.quotas.admit(&action, &body)?;
        self.admin(&action, &grant, &body).await
    }

    /// Reads the body, refusing one over the limit before reading it whole.
    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, WireError> {
        let too_large = || WireError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: "SerializationException",
            message: format!("Request body is larger than {} bytes.", self.body_limit),
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.body_limit) {
            return Err(too_large());
        }
        axum::body::to_bytes(body, self.body_limit)
            .await
            .map_err(|_| too_large())
    }

    /// Verifies an administrator's SigV4 signature over a request (also used by the server's
    /// own admin endpoints).
    pub fn verify_admin(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<AdminGrant, WireError> {
        let now =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.clock.now()) * 1_000_000)
                .map_err(|_| WireError::internal())?;
        let signed = sigv4::SignedRequest {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query().unwrap_or(""),
            headers,
            body,
        };
        let signer = sigv4::verify(&signed, now, SIGNATURE_WINDOW_S, |id| {
            self.keys
                .iter()
                .find(|k| k.access_key_id == id)
                .map(|k| k.secret_access_key.clone())
        })?;
        let pools = self
            .keys
            .iter()
            .find(|k| k.access_key_id == signer.access_key_id)
            .and_then(|k| k.pools.clone());
        let region = if signer.region.is_empty() {
            self.region.clone()
        } else {
            signer.region
        };
        Ok(AdminGrant::new(region, pools))
    }

    /// The public actions (no signature: a client id, token or session authorises them);
    /// `None` for every other action.
    async fn public(
        &self,
        action: &str,
        body: &[u8],
    ) -> Option<Result<serde_json::Value, WireError>> {
        let dir = self.directory.as_ref();
        let call: Pending<'_> = match action {
            "SignUp" => Box::pin(users::sign_up(dir, body)),
            "ConfirmSignUp" => Box::pin(users::confirm_sign_up(dir, body)),
            "ResendConfirmationCode" => Box::pin(users::resend_confirmation_code(dir, body)),
            "InitiateAuth" => Box::pin(auth::initiate_auth(dir, body)),
            "GetUser" => Box::pin(auth::get_user(dir, body)),
            "GlobalSignOut" => Box::pin(auth::global_sign_out(dir, body)),
            "RevokeToken" => Box::pin(auth::revoke_token(dir, body)),
            "GetTokensFromRefreshToken" => Box::pin(auth::get_tokens_from_refresh_token(dir, body)),
            "RespondToAuthChallenge" => Box::pin(auth::respond_to_auth_challenge(dir, body)),
            "AssociateSoftwareToken" => Box::pin(mfa::associate_software_token(dir, body)),
            "VerifySoftwareToken" => Box::pin(mfa::verify_software_token(dir, body)),
            "SetUserMFAPreference" => Box::pin(mfa::set_user_mfa_preference(dir, body)),
            "UpdateUserAttributes" => Box::pin(account::update_user_attributes(dir, body)),
            "DeleteUserAttributes" => Box::pin(account::delete_user_attributes(dir, body)),
            "DeleteUser" => Box::pin(account::delete_user(dir, body)),
            "ChangePassword" => Box::pin(account::change_password(dir, body)),
            "GetUserAttributeVerificationCode" => {
                Box::pin(account::get_user_attribute_verification_code(dir, body))
            }
            "VerifyUserAttribute" => Box::pin(account::verify_user_attribute(dir, body)),
            "ForgotPassword" => Box::pin(account::forgot_password(dir, body)),
            "ConfirmForgotPassword" => Box::pin(account::confirm_forgot_password(dir, body)),
            _ => return None,
        };
        // Known to be public, so counted against its quota before it runs.
        Some(match self.quotas.admit(action, body) {
            Ok(()) => call.await,
            Err(e) => Err(e),
        })
    }

    async fn admin(
        &self,
        action: &str,
        grant: &AdminGrant,
        body: &[u8],
    ) -> Result<serde_json::Value, WireError> {
        let d = self.directory.as_ref();
        match action {
            "CreateUserPool" => pools::create_user_pool(d, grant, body).await,
            "DescribeUserPool" => pools::describe_user_pool(d, grant, body).await,
            "ListUserPools" => pools::list_user_pools(d, grant, body).await,
            "UpdateUserPool" => pools::update_user_pool(d, grant, body).await,
            "DeleteUserPool" => pools::delete_user_pool(d, grant, body).await,
            "AddCustomAttributes" => pools::add_custom_attributes(d, grant, body).await,
            "CreateUserPoolClient" => pools::create_user_pool_client(d, grant, body).await,
            "DescribeUserPoolClient" => pools::describe_user_pool_client(d, grant, body).await,
            "ListUserPoolClients" => pools::list_user_pool_clients(d, grant, body).await,
            "UpdateUserPoolClient" => pools::update_user_pool_client(d, grant, body).await,
            "DeleteUserPoolClient" => pools::delete_user_pool_client(d, grant, body).await,
            "CreateResourceServer" => pools::create_resource_server(d, grant, body).await,
            "DescribeResourceServer" => pools::describe_resource_server(d, grant, body).await,
            "ListResourceServers" => pools::list_resource_servers(d, grant, body).await,
            "UpdateResourceServer" => pools::update_resource_server(d, grant, body).await,
            "DeleteResourceServer" => pools::delete_resource_server(d, grant, body).await,
            "AdminCreateUser" => users::admin_create_user(d, grant, body).await,
            "AdminConfirmSignUp" => users::admin_confirm_sign_up(d, grant, body).await,
            "AdminGetUser" => users::admin_get_user(d, grant, body).await,
            "AdminInitiateAuth" => auth::admin_initiate_auth(d, grant, body).await,
            "AdminUserGlobalSignOut" => auth::admin_user_global_sign_out(d, grant, body).await,
            "AdminRespondToAuthChallenge" => {
                auth::admin_respond_to_auth_challenge(d, grant, body).await
            }
            "ListUsers" => users::list_users(d, grant, body).await,
            "SetUserPoolMfaConfig" => mfa::set_user_pool_mfa_config(d, grant, body).await,
            "GetUserPoolMfaConfig" => mfa::get_user_pool_mfa_config(d, grant, body).await,
            "AdminSetUserMFAPreference" => mfa::admin_set_user_mfa_preference(d, grant, body).await,
            "AdminUpdateUserAttributes" => {
                users::admin_update_user_attributes(d, grant, body).await
            }
            "AdminDeleteUserAttributes" => {
                users::admin_delete_user_attributes(d, grant, body).await
            }
            "AdminDisableUser" => users::admin_disable_user(d, grant, body).await,
            "AdminEnableUser" => users::admin_enable_user(d, grant, body).await,
            "AdminDeleteUser" => users::admin_delete_user(d, grant, body).await,
            "AdminSetUserPassword" => users::admin_set_user_password(d, grant, body).await,
            "AdminResetUserPassword" => users::admin_reset_user_password(d, grant, body).await,
            "CreateGroup" => users::create_group(d, grant, body).await,
            "GetGroup" => users::get_group(d, grant, body).await,
            "ListGroups" => users::list_groups(d, grant, body).await,
            "UpdateGroup" => users::update_group(d, grant, body).await,
            "DeleteGroup" => users::delete_group(d, grant, body).await,
            "AdminAddUserToGroup" => users::admin_add_user_to_group(d, grant, body).await,
            "AdminRemoveUserFromGroup" => users::admin_remove_user_from_group(d, grant, body).await,
            "AdminListGroupsForUser" => users::admin_list_groups_for_user(d, grant, body).await,
            "ListUsersInGroup" => users::list_users_in_group(d, grant, body).await,
            other => Err(unknown(other)),
        }
    }
}

/// A public action on its way (one type for every arm of the dispatch).
type Pending<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<serde_json::Value, WireError>> + Send + 'a>,
>;

fn unknown(action: &str) -> WireError {
    WireError::new(
        "UnknownOperationException",
        format!("Cognate does not implement the operation {action}."),
    )
}
