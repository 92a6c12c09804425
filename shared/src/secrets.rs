//! Team secrets (a Stripe secret key, a webhook signing secret) encrypted at rest with AWS
//! KMS: `Encrypt` directly under the deployment's key (a Stripe key is far below KMS's
//! 4 KB limit), with the team's ID as encryption context, so a ciphertext copied onto
//! another team's record does not decrypt. Plaintext lives only in [`Secret`], whose
//! `Debug` is redacted.

use aws_sdk_kms::primitives::Blob;

use crate::deadline::WithinDeadline;
use crate::error::{ApiError, AwsService, aws_error};

/// The encryption-context key that binds a ciphertext to its team (and that the IAM
/// policies condition on: `kms:EncryptionContext:team_id`).
pub const CONTEXT_KEY: &str = "team_id";

/// A secret in memory. Never printed: `Debug` shows only its kind.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plaintext, for the one place that sends it (an `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why a stored secret could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptError {
    /// KMS refused the ciphertext for this team: it was made for another team (copied
    /// between records), under another key, or altered.
    NotThisTeams,
    /// The call itself failed: KMS was out of reach, busy, or refused the call for the
    /// deployment's state (a key disabled or not ours to use): 503 (`error::aws_error`).
    Failed(ApiError),
}

/// The KMS client and the key new secrets are encrypted under.
#[derive(Clone)]
pub struct Kms {
    client: aws_sdk_kms::Client,
    /// `KMS_KEY_ID`: a key ID, ARN or `alias/…`. Needed to encrypt; decrypting reads the
    /// key from the ciphertext (and is checked against this one when set).
    key_id: Option<String>,
}

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kms").field("key_id", &self.key_id).finish()
    }
}

impl Kms {
    /// A client on `sdk` settings, at `endpoint` (a local KMS) if given.
    pub fn new(sdk: &aws_config::SdkConfig, endpoint: Option<&str>, key_id: Option<&str>) -> Self {
        let mut config = aws_sdk_kms::config::Builder::from(sdk);
        if let Some(endpoint) = endpoint {
            config = config.endpoint_url(endpoint);
        }
        Self {
            client: aws_sdk_kms::Client::from_conf(config.build()),
            key_id: key_id.map(str::to_owned),
        }
    }

    pub fn client(&self) -> &aws_sdk_kms::Client {
        &self.client
    }

    /// Encrypts `secret` for `team_id`.
    pub async fn encrypt(&self, team_id: &str, secret: &Secret) -> Result<Vec<u8>, ApiError> {
        let key_id = self
            .key_id
            .as_deref()
            .ok_or_else(|| ApiError::internal("KMS_KEY_ID is not set: cannot encrypt"))?;
        let out = self
            .client
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(secret.expose().as_bytes()))
            .encryption_context(CONTEXT_KEY, team_id)
            .send()
            .within_deadline()
            .await
            .map_err(|e| aws_error(AwsService::Kms, e))?;
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| ApiError::unavailable("The key service returned no ciphertext"))
    }

    /// Decrypts a ciphertext that [`Kms::encrypt`] made for `team_id`.
    pub async fn decrypt(&self, team_id: &str, ciphertext: &[u8]) -> Result<Secret, DecryptError> {
        use aws_sdk_kms::operation::decrypt::DecryptError as Sdk;
        let result = self
            .client
            .decrypt()
            .set_key_id(self.key_id.clone())
            .ciphertext_blob(Blob::new(ciphertext))
            .encryption_context(CONTEXT_KEY, team_id)
            .send()
            .within_deadline()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(err) => {
                let refused = matches!(
                    err.as_service_error(),
                    Some(Sdk::InvalidCiphertextException(_) | Sdk::IncorrectKeyException(_))
                );
                return Err(if refused {
                    DecryptError::NotThisTeams
                } else {
                    DecryptError::Failed(aws_error(AwsService::Kms, err))
                });
            }
        };
        let plaintext = out.plaintext.map(Blob::into_inner).ok_or_else(|| {
            DecryptError::Failed(ApiError::unavailable(
                "The key service returned no plaintext",
            ))
        })?;
        String::from_utf8(plaintext)
            .map(Secret)
            .map_err(|_| DecryptError::NotThisTeams)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let secret = Secret::new("sk_test_abcdef");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(Secret(<redacted>))");
        assert_eq!(secret.expose(), "sk_test_abcdef");
    }
}
