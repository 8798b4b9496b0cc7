//! Cognito's request-rate quotas by operation category (security checklist A26): each action
//! belongs to a category (AWS's "Quotas in Amazon Cognito", user-pool operation categories), and
//! a category given a rate in the configuration admits that many requests a second, with a
//! burst of one second's worth. Past it: `TooManyRequestsException` ("Rate exceeded", 400).
//!
//! As on AWS, a category is shared by every pool (AWS: of an account and region); unlike AWS,
//! each node keeps its own buckets, so N nodes admit N times the rate. Off unless configured.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;
use throttle::{Bucket, Throttle};

use crate::errors::WireError;

/// The user-pool operation categories that have API actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum Category {
    UserAuthentication,
    UserCreation,
    UserAccountRecovery,
    UserRead,
    UserUpdate,
    UserToken,
    UserResourceRead,
    UserResourceUpdate,
    UserList,
    UserPoolRead,
    UserPoolUpdate,
    UserPoolResourceRead,
    UserPoolResourceUpdate,
    UserPoolClientRead,
    UserPoolClientUpdate,
}

const CATEGORIES: usize = 15;
// The limits are indexed by category: a new category must grow the array.
const _: () = assert!(Category::UserPoolClientUpdate as usize + 1 == CATEGORIES);

impl Category {
    /// The category AWS counts an action under; `None` for actions it lists under none (and
    /// for ones Cognate does not know). Challenge answers are sorted by [`Quotas::admit`].
    pub fn of(action: &str) -> Option<Self> {
        use Category::*;
        Some(match action {
            "InitiateAuth"
            | "AdminInitiateAuth"
            | "RespondToAuthChallenge"
            | "AdminRespondToAuthChallenge"
            | "GetTokensFromRefreshToken" => UserAuthentication,
            "SignUp" | "ConfirmSignUp" | "AdminCreateUser" | "AdminConfirmSignUp" => UserCreation,
            "ChangePassword"
            | "ConfirmForgotPassword"
            | "ForgotPassword"
            | "AdminResetUserPassword"
            | "AdminSetUserPassword" => UserAccountRecovery,
            "AdminGetUser" | "AdminGetUserAuthFactors" | "GetUser" => UserRead,
            "AdminAddUserToGroup"
            | "AdminDeleteUserAttributes"
            | "AdminUpdateUserAttributes"
            | "AdminDeleteUser"
            | "AdminDisableUser"
            | "AdminEnableUser"
            | "AdminLinkProviderForUser"
            | "AdminDisableProviderForUser"
            | "VerifyUserAttribute"
            | "DeleteUser"
            | "DeleteUserAttributes"
            | "UpdateUserAttributes"
            | "AdminUserGlobalSignOut"
            | "GlobalSignOut"
            | "AdminRemoveUserFromGroup" => UserUpdate,
            "RevokeToken" => UserToken,
            "AdminGetDevice"
            | "AdminListGroupsForUser"
            | "AdminListDevices"
            | "GetDevice"
            | "ListDevices"
            | "GetUserAttributeVerificationCode"
            | "ResendConfirmationCode"
            | "AdminListUserAuthEvents" => UserResourceRead,
            "AdminForgetDevice"
            | "AdminUpdateAuthEventFeedback"
            | "AdminSetUserMFAPreference"
            | "AdminDeleteSoftwareToken"
            | "AdminSetUserSettings"
            | "AdminUpdateDeviceStatus"
            | "UpdateDeviceStatus"
            | "UpdateAuthEventFeedback"
            | "ConfirmDevice"
            | "SetUserMFAPreference"
            | "SetUserSettings"
            | "VerifySoftwareToken"
            | "AssociateSoftwareToken"
            | "ForgetDevice" => UserResourceUpdate,
            "ListUsers" | "ListUsersInGroup" => UserList,
            "DescribeUserPool" | "ListUserPools" => UserPoolRead,
            "CreateUserPool" | "UpdateUserPool" | "DeleteUserPool" => UserPoolUpdate,
            "DescribeIdentityProvider"
            | "DescribeResourceServer"
            | "DescribeUserImportJob"
            | "DescribeUserPoolDomain"
            | "GetCSVHeader"
            | "GetGroup"
            | "GetSigningCertificate"
            | "GetIdentityProviderByIdentifier"
            | "GetUserPoolMfaConfig"
            | "ListGroups"
            | "ListIdentityProviders"
            | "ListResourceServers"
            | "ListTagsForResource"
            | "ListUserImportJobs"
            | "DescribeRiskConfiguration"
            | "GetUICustomization" => UserPoolResourceRead,
            "AddCustomAttributes"
            | "CreateGroup"
            | "CreateIdentityProvider"
            | "CreateResourceServer"
            | "CreateUserImportJob"
            | "CreateUserPoolDomain"
            | "DeleteGroup"
            | "DeleteIdentityProvider"
            | "DeleteResourceServer"
            | "DeleteUserPoolDomain"
            | "SetUserPoolMfaConfig"
            | "StartUserImportJob"
            | "StopUserImportJob"
            | "UpdateGroup"
            | "UpdateIdentityProvider"
            | "UpdateResourceServer"
            | "UpdateUserPoolDomain"
            | "SetRiskConfiguration"
            | "SetUICustomization"
            | "TagResource"
            | "UntagResource" => UserPoolResourceUpdate,
            "DescribeUserPoolClient" | "ListUserPoolClients" => UserPoolClientRead,
            "CreateUserPoolClient" | "DeleteUserPoolClient" | "UpdateUserPoolClient" => {
                UserPoolClientUpdate
            }
            _ => return None,
        })
    }
}

/// One limited category (or the challenge answers' allocation) on this node.
struct Limit {
    throttle: Throttle,
    bucket: Mutex<Bucket>,
}

impl Limit {
    fn new(per_second: f64, now: Instant) -> Self {
        // A burst of one second's worth: AWS documents rates, not bursts.
        let throttle = Throttle {
            rate: per_second,
            burst: per_second.ceil().max(1.0) as u32,
        };
        Self {
            bucket: Mutex::new(Bucket::full(&throttle, now)),
            throttle,
        }
    }

    fn take(&self, now: Instant) -> bool {
        // A poisoned lock only means another request panicked mid-take: the bucket is intact.
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        bucket.take(&self.throttle, now)
    }
}

/// The configured quotas: requests a second by category.
#[derive(Default)]
pub struct Quotas {
    limits: [Option<Limit>; CATEGORIES],
    /// Challenge answers other than NEW_PASSWORD_REQUIRED first use an allocation of three
    /// times UserAuthentication's rate, then UserAuthentication itself (AWS's rule).
    challenges: Option<Limit>,
    any: bool,
}

/// Only the challenge's name is read to sort a challenge answer.
#[derive(Deserialize)]
struct ChallengeAnswer<'a> {
    #[serde(rename = "ChallengeName", borrow)]
    challenge: Option<std::borrow::Cow<'a, str>>,
}

impl Quotas {
    /// `rates`: requests a second, each finite and above zero (the configuration checks).
    pub fn new(rates: &BTreeMap<Category, f64>) -> Self {
        let now = Instant::now();
        let mut quotas = Self::default();
        for (&category, &rate) in rates {
            quotas.limits[category as usize] = Some(Limit::new(rate, now));
            if category == Category::UserAuthentication {
                quotas.challenges = Some(Limit::new(3.0 * rate, now));
            }
        }
        quotas.any = !rates.is_empty();
        quotas
    }

    /// Admits one request for `action` (with its body), or refuses it as Cognito does.
    pub fn admit(&self, action: &str, body: &[u8]) -> Result<(), WireError> {
        if !self.any {
            return Ok(());
        }
        self.admit_at(action, body, Instant::now())
    }

    fn admit_at(&self, action: &str, body: &[u8], now: Instant) -> Result<(), WireError> {
        let Some(mut category) = Category::of(action) else {
            return Ok(());
        };
        if matches!(
            action,
            "RespondToAuthChallenge" | "AdminRespondToAuthChallenge"
        ) {
            let name = serde_json::from_slice::<ChallengeAnswer>(body)
                .ok()
                .and_then(|a| a.challenge);
            if name.as_deref() == Some("NEW_PASSWORD_REQUIRED") {
                category = Category::UserAccountRecovery;
            } else if self.challenges.as_ref().is_some_and(|l| l.take(now)) {
                return Ok(());
            }
        }
        match &self.limits[category as usize] {
            Some(limit) if !limit.take(now) => Err(WireError::throttled()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(rates: &[(Category, f64)]) -> Quotas {
        Quotas::new(&rates.iter().copied().collect())
    }

    /// How many of `times` requests at the instant `now` (no refill between them) are admitted.
    fn admitted(q: &Quotas, now: Instant, action: &str, body: &str, times: usize) -> usize {
        (0..times)
            .filter(|_| q.admit_at(action, body.as_bytes(), now).is_ok())
            .count()
    }

    #[test]
    fn a_category_admits_one_seconds_worth_then_refuses_as_cognito() {
        let q = quotas(&[(Category::UserRead, 5.0)]);
        let now = Instant::now();
        assert_eq!(admitted(&q, now, "GetUser", "{}", 20), 5);
        // The category is shared by its actions.
        let refused = q.admit_at("AdminGetUser", b"{}", now).unwrap_err();
        assert_eq!(refused.kind, "TooManyRequestsException");
        assert_eq!(refused.message, "Rate exceeded");
        assert_eq!(refused.status, http::StatusCode::BAD_REQUEST);
        // Other categories, unlimited ones and unknown actions are untouched.
        assert_eq!(admitted(&q, now, "ListUsers", "{}", 50), 50);
        assert_eq!(admitted(&q, now, "NoSuchAction", "{}", 50), 50);
        // The rate comes back: one more every 200 ms, never more than the burst.
        let later = now + std::time::Duration::from_millis(400);
        assert_eq!(admitted(&q, later, "GetUser", "{}", 20), 2);
        let much_later = later + std::time::Duration::from_secs(60);
        assert_eq!(admitted(&q, much_later, "GetUser", "{}", 20), 5);
    }

    #[test]
    fn no_quotas_admit_everything() {
        let q = Quotas::default();
        assert_eq!(
            admitted(&q, Instant::now(), "InitiateAuth", "{}", 1000),
            1000
        );
        assert!(q.admit("InitiateAuth", b"{}").is_ok());
    }

    #[test]
    fn challenge_answers_use_three_times_the_rate_then_user_authentication() {
        let q = quotas(&[(Category::UserAuthentication, 2.0)]);
        let now = Instant::now();
        let answer = r#"{"ChallengeName":"SOFTWARE_TOKEN_MFA"}"#;
        // 6 from the challenge allocation, then the 2 of UserAuthentication.
        assert_eq!(admitted(&q, now, "RespondToAuthChallenge", answer, 20), 8);
        assert_eq!(admitted(&q, now, "InitiateAuth", "{}", 1), 0);
        // A sign-in uses UserAuthentication only, never the challenges' allocation.
        let later = now + std::time::Duration::from_secs(60);
        assert_eq!(admitted(&q, later, "InitiateAuth", "{}", 20), 2);
        assert_eq!(admitted(&q, later, "RespondToAuthChallenge", answer, 20), 6);
    }

    #[test]
    fn a_new_password_answer_counts_as_account_recovery() {
        let q = quotas(&[
            (Category::UserAuthentication, 1.0),
            (Category::UserAccountRecovery, 2.0),
        ]);
        let now = Instant::now();
        let answer = r#"{"ChallengeName":"NEW_PASSWORD_REQUIRED","ClientId":"x"}"#;
        assert_eq!(
            admitted(&q, now, "AdminRespondToAuthChallenge", answer, 10),
            2
        );
        assert_eq!(admitted(&q, now, "ForgotPassword", "{}", 1), 0);
        assert_eq!(admitted(&q, now, "InitiateAuth", "{}", 1), 1);
    }

    #[test]
    fn every_action_cognate_serves_has_a_category() {
        // The dispatch's own arms, read from its source so that a new action cannot be missed.
        let dispatch = include_str!("lib.rs");
        let arm = regex::Regex::new(r#"(?m)^\s+"(\w+)" => "#).unwrap();
        let actions: Vec<&str> = arm
            .captures_iter(dispatch)
            .map(|c| c.get(1).unwrap().as_str())
            .collect();
        assert!(actions.len() > 50, "{actions:?}");
        for action in actions {
            assert!(Category::of(action).is_some(), "{action}");
        }
    }
}
