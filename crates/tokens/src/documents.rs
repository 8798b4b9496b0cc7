//! The JWKS and OpenID discovery documents, in the shapes Cognito serves.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One public key of a JWKS (RFC 7517), members in Cognito's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub alg: String,
    pub e: String,
    pub kid: String,
    pub kty: String,
    pub n: String,
    pub r#use: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// The discovery document of the pool whose issuer is `issuer` (`{base}/{poolId}`). Without a
/// hosted-UI domain Cognito serves this reduced form: the authorization endpoint is the issuer
/// itself and there are no token or userInfo endpoints.
pub fn openid_configuration(issuer: &str) -> Value {
    json!({
        "authorization_endpoint": issuer,
        "id_token_signing_alg_values_supported": ["RS256"],
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "response_types_supported": ["code", "id_token", "token id_token", "none"],
        "scopes_supported": ["openid", "email", "phone", "profile"],
        "subject_types_supported": ["public"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    })
}
