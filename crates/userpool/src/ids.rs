//! Identifiers shaped like Cognito's.

use crate::Directory;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

impl Directory {
    /// Uniformly random characters from `alphabet` (rejection sampling, no modulo bias).
    pub(crate) fn random_string(&self, alphabet: &[u8], len: usize) -> String {
        let limit = 256 - (256 % alphabet.len());
        let mut out = String::with_capacity(len);
        while out.len() < len {
            let buf: [u8; 32] = self.random_bytes();
            for b in buf {
                if (b as usize) < limit && out.len() < len {
                    out.push(alphabet[b as usize % alphabet.len()] as char);
                }
            }
        }
        out
    }

    /// `us-east-1_AbCdEf123`
    pub(crate) fn new_pool_id(&self, region: &str) -> String {
        format!("{region}_{}", self.random_string(ALNUM, 9))
    }

    pub(crate) fn pool_arn(&self, region: &str, pool_id: &str) -> String {
        format!(
            "arn:aws:cognito-idp:{region}:{}:userpool/{pool_id}",
            self.account_id
        )
    }

    /// 26 lower-case alphanumerics.
    pub(crate) fn new_client_id(&self) -> String {
        self.random_string(LOWER_ALNUM, 26)
    }

    /// 51 lower-case alphanumerics.
    pub(crate) fn new_client_secret(&self) -> String {
        self.random_string(LOWER_ALNUM, 51)
    }

    /// A random (version 4) UUID.
    pub(crate) fn new_uuid(&self) -> String {
        uuid::Builder::from_random_bytes(self.random_bytes())
            .into_uuid()
            .to_string()
    }
}
