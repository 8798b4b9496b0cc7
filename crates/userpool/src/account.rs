//! What users do to their own account: with an access token, change attributes, verify them,
//! change the password or delete the account; without one, reset a forgotten password with a
//! code (spec 03; the admin twins live in `users`).

use crate::attributes::{self, Writer};
use crate::error::{Error, Result};
use crate::users::{aliases_for, reset_destination};
use crate::{Client, CodeDelivery, CodePurpose, Directory, Medium, MessageKind, Pool};
use crate::{UserStatus, codes};

/// ConfirmForgotPassword.
#[derive(Debug, Clone, Default)]
pub struct ConfirmForgotPassword {
    pub client_id: String,
    pub secret_hash: Option<String>,
    pub username: String,
    pub code: String,
    pub password: String,
}

fn unauthorized_attribute() -> Error {
    Error::not_authorized("A client attempted to write unauthorized attribute")
}

/// Users may not set verification flags or developer-only attributes, nor attributes their app
/// client may not write.
pub(crate) fn check_user_writes(pool: &Pool, client: &Client, names: &[&str]) -> Result<()> {
    for name in names {
        let developer_only = attributes::find(&pool.config, name).is_some_and(|a| a.developer_only);
        let client_may = client
            .config
            .write_attributes
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|a| a == name));
        if name.ends_with("_verified") || developer_only || !client_may {
            return Err(unauthorized_attribute());
        }
    }
    Ok(())
}

/// The code purpose that verifies `attribute`, which must be `email` or `phone_number`.
fn verification_purpose(attribute: &str) -> Result<CodePurpose> {
    match attribute {
        "email" => Ok(CodePurpose::VerifyEmail),
        "phone_number" => Ok(CodePurpose::VerifyPhone),
        other => Err(Error::invalid(format!(
            "Invalid attribute name: {other} cannot be verified."
        ))),
    }
}

impl Directory {
    async fn holder_client(&self, client_id: &str) -> Result<Client> {
        self.store
            .get_client(client_id)
            .await?
            .ok_or_else(|| Error::not_authorized("Invalid Access Token"))
    }

    /// UpdateUserAttributes: the deliveries of the verification codes it sent.
    pub async fn update_user_attributes(
        &self,
        access_token: &str,
        changes: Vec<(String, String)>,
    ) -> Result<Vec<CodeDelivery>> {
        let h = self.token_holder(access_token).await?;
        let client = self.holder_client(&h.client_id).await?;
        let names: Vec<&str> = changes.iter().map(|(n, _)| n.as_str()).collect();
        check_user_writes(&h.pool, &client, &names)?;
        let writes = attributes::check_writes(&h.pool.config, &changes, Writer::Admin)?;
        Ok(self
            .write_attributes(&h.pool, h.user, writes, crate::codes::Sender::User)
            .await?
            .into_iter()
            .collect())
    }

    pub async fn delete_user_attributes(
        &self,
        access_token: &str,
        names: Vec<String>,
    ) -> Result<()> {
        let h = self.token_holder(access_token).await?;
        let client = self.holder_client(&h.client_id).await?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        check_user_writes(&h.pool, &client, &refs)?;
        self.remove_attributes(&h.pool, h.user, &names).await
    }

    /// DeleteUser: the account, its codes and memberships go; its refresh tokens stop working
    /// with it.
    pub async fn delete_user(&self, access_token: &str) -> Result<()> {
        let (pool, user) = self.access_token_user(access_token).await?;
        if !self
            .store
            .delete_user(&pool.id, &user.sub, self.now())
            .await?
        {
            return Err(Error::UserNotFound);
        }
        Ok(())
    }

    /// ChangePassword: the current password proves it is the user at the keyboard.
    pub async fn change_password(
        &self,
        access_token: &str,
        previous: &str,
        proposed: &str,
    ) -> Result<()> {
        let (pool, user) = self.access_token_user(access_token).await?;
        crate::password::check_policy(&pool.config.password_policy, proposed)?;
        let wrong = || Error::not_authorized("Incorrect username or password.");
        let Some(current) = user.password.as_ref().map(|p| p.hash.clone()) else {
            return Err(wrong());
        };
        if !self.hasher.verify(previous, &current).await? {
            return Err(wrong());
        }
        let new = self.credential(&pool, &user, proposed, None).await?;
        self.change_user(&pool, user, |user| {
            // The password proven must still be the user's: of two changes from one password,
            // one lands and the other is told the previous password is wrong.
            if user.password.as_ref().map(|p| &p.hash) != Some(&current) {
                return Err(wrong());
            }
            user.password = Some(new.clone());
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// GetUserAttributeVerificationCode: sends a code for the user's e-mail or phone number.
    pub async fn get_user_attribute_verification_code(
        &self,
        access_token: &str,
        attribute: &str,
    ) -> Result<CodeDelivery> {
        let (pool, user) = self.access_token_user(access_token).await?;
        verification_purpose(attribute)?;
        if user.attribute(attribute).is_none() {
            return Err(Error::invalid(format!(
                "Invalid attribute name: the user has no {attribute}."
            )));
        }
        self.send_verification(&pool, &user, attribute).await
    }

    /// VerifyUserAttribute: the code marks the attribute verified (and makes it a sign-in
    /// alias where the pool has it as one).
    pub async fn verify_user_attribute(
        &self,
        access_token: &str,
        attribute: &str,
        code: &str,
    ) -> Result<()> {
        let (pool, user) = self.access_token_user(access_token).await?;
        let purpose = verification_purpose(attribute)?;
        self.redeem_and_change(&pool, user, (purpose, code), false, |user| {
            user.attributes
                .insert(format!("{attribute}_verified"), "true".into());
            user.aliases = aliases_for(&pool, &user.attributes);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// ForgotPassword: a reset code to the verified e-mail (else phone). The password keeps
    /// working until ConfirmForgotPassword replaces it.
    pub async fn forgot_password(
        &self,
        client_id: &str,
        secret_hash: Option<&str>,
        username: &str,
    ) -> Result<CodeDelivery> {
        let (client, pool) = self.public_client(client_id, username, secret_hash).await?;
        let Some(user) = self.find_user(&pool, username).await? else {
            return if client.config.prevent_user_existence_errors == "ENABLED" {
                // What a real user's delivery would look like, so the answer tells nothing.
                Ok(CodeDelivery {
                    destination: codes::mask(Medium::Email, &pretend_email(username)),
                    medium: Medium::Email,
                    attribute: "email".into(),
                })
            } else {
                Err(Error::UserNotFound)
            };
        };
        if !user.enabled {
            return Err(Error::not_authorized("User is disabled."));
        }
        let dest = reset_destination(&user)?;
        self.send_code(
            &pool,
            &user,
            CodePurpose::ForgotPassword,
            MessageKind::ForgotPassword,
            dest,
        )
        .await
    }

    /// ConfirmForgotPassword: the code and the new password, written together.
    pub async fn confirm_forgot_password(&self, req: ConfirmForgotPassword) -> Result<()> {
        let (client, pool) = self
            .public_client(&req.client_id, &req.username, req.secret_hash.as_deref())
            .await?;
        crate::password::check_policy(&pool.config.password_policy, &req.password)?;
        let Some(user) = self.find_user(&pool, &req.username).await? else {
            return Err(
                if client.config.prevent_user_existence_errors == "ENABLED" {
                    Error::CodeMismatch
                } else {
                    Error::UserNotFound
                },
            );
        };
        let new = self.credential(&pool, &user, &req.password, None).await?;
        let code = (CodePurpose::ForgotPassword, req.code.as_str());
        self.redeem_and_change(&pool, user, code, false, |user| {
            user.password = Some(new.clone());
            if user.status != UserStatus::Unconfirmed {
                user.status = UserStatus::Confirmed;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }
}

/// An e-mail-shaped stand-in for a user who does not exist.
fn pretend_email(username: &str) -> String {
    if username.contains('@') {
        username.to_string()
    } else {
        format!("{username}@example.com")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_email_and_phone_can_be_verified() {
        assert_eq!(
            verification_purpose("email").unwrap(),
            CodePurpose::VerifyEmail
        );
        assert_eq!(
            verification_purpose("phone_number").unwrap(),
            CodePurpose::VerifyPhone
        );
        assert!(verification_purpose("name").is_err());
    }

    #[test]
    fn pretend_deliveries_look_like_real_ones() {
        let masked = codes::mask(Medium::Email, &pretend_email("nobody"));
        assert_eq!(masked, "n***@e***");
        assert_eq!(
            codes::mask(Medium::Email, &pretend_email("zed@mail.test")),
            "z***@m***"
        );
    }
}
