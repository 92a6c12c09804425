//! AWS SDK settings: one loader for every binary, and the HTTPS client the Lambda functions
//! use.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};

/// The roots every AWS service endpoint chains to (Amazon Trust Services: Amazon Root CA 1
/// to 4, and the Starfield root that cross-signs them), as PEM.
pub const AMAZON_TRUST_SERVICES_PEM: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// The AWS settings of the environment (credentials, region, profile, ...), with the SDK's
/// default HTTPS client, which trusts the machine's root certificates. For a local DynamoDB,
/// which accepts anything, a region and credentials are filled in when the environment has
/// none. Command-line tools use this.
pub async fn settings(local: bool) -> SdkConfig {
    loader(local).load().await
}

/// The settings a Lambda function uses. Its HTTPS client trusts only the Amazon Trust
/// Services roots ([`amazon_trust_client`]).
///
/// In Lambda the environment holds the region and the role's credentials
/// ([`from_lambda_environment`]), which are what the default provider chains would pick
/// first anyway; the chains themselves (profile files, SSO, web identity, ECS and IMDS
/// providers, FIPS and dual-stack lookups) cost most of a millisecond of every cold start
/// and find nothing more there. Anywhere else (`cargo lambda watch` with a profile, say) the
/// full chain of [`settings`] runs.
pub async fn lambda_settings(local: bool) -> SdkConfig {
    let http = amazon_trust_client();
    match from_lambda_environment(|name| std::env::var(name).ok(), http.clone()) {
        Some(config) => config,
        None => loader(local).http_client(http).load().await,
    }
}

/// Settings straight from the variables Lambda sets for every function: `AWS_REGION`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (the execution
/// role's credentials, fixed for the life of the execution environment). `None` when the
/// region or a key is missing.
pub fn from_lambda_environment(
    var: impl Fn(&str) -> Option<String>,
    http: SharedHttpClient,
) -> Option<SdkConfig> {
    let var = |name: &str| var(name).filter(|value| !value.is_empty());
    let region = var("AWS_REGION")?;
    let credentials = Credentials::new(
        var("AWS_ACCESS_KEY_ID")?,
        var("AWS_SECRET_ACCESS_KEY")?,
        var("AWS_SESSION_TOKEN"),
        None,
        "LambdaEnvironment",
    );
    // The clients add the default sleep, time source, retry and timeout settings.
    Some(
        SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region))
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .http_client(http)
            .build(),
    )
}

/// The SDK's own HTTPS client (rustls + aws-lc-rs, connection pool, timeouts, retry
/// classification unchanged) with a trust store of the five Amazon Trust Services roots
/// instead of the machine's bundle.
///
/// Why: loading the native roots means reading and parsing 140-odd certificates in every
/// cold start (the SDK does it while the config is built), which was most of our init time;
/// these five parse in microseconds. And a function that only ever talks to AWS endpoints has
/// no reason to trust any other CA. An endpoint that does not chain to these roots (a
/// TLS-intercepting proxy, an https DynamoDB-compatible server with its own CA) is refused;
/// plain-http local endpoints are not affected.
pub fn amazon_trust_client() -> SharedHttpClient {
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_TRUST_SERVICES_PEM);
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .expect(
                    // Only fails for an invalid extra server name; we set none.
                    "a TLS context with only a trust store",
                ),
        )
        .build_https()
}

fn loader(local: bool) -> aws_config::ConfigLoader {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if local {
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "billstack-local",
            ));
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            loader = loader.region(aws_config::Region::new("us-east-1"));
        }
    }
    loader
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::config::ProvideCredentials;

    fn lambda_env(name: &str) -> Option<String> {
        match name {
            "AWS_REGION" => Some("eu-west-1".into()),
            "AWS_ACCESS_KEY_ID" => Some("ASIAEXAMPLE".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".into()),
            "AWS_SESSION_TOKEN" => Some("token".into()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn lambda_environment_gives_region_and_role_credentials() {
        let config = from_lambda_environment(lambda_env, amazon_trust_client()).expect("complete");
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        let credentials = config
            .credentials_provider()
            .expect("credentials")
            .provide_credentials()
            .await
            .expect("credentials resolve");
        assert_eq!(credentials.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(credentials.secret_access_key(), "secret");
        assert_eq!(credentials.session_token(), Some("token"));
    }

    #[test]
    fn without_region_or_keys_the_full_chain_runs() {
        for missing in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let env = |name: &str| (name != missing).then(|| lambda_env(name)).flatten();
            assert!(
                from_lambda_environment(env, amazon_trust_client()).is_none(),
                "{missing}"
            );
            let blank = |name: &str| {
                if name == missing {
                    Some(String::new())
                } else {
                    lambda_env(name)
                }
            };
            assert!(
                from_lambda_environment(blank, amazon_trust_client()).is_none(),
                "{missing} empty"
            );
        }
        let no_token = |name: &str| {
            (name != "AWS_SESSION_TOKEN")
                .then(|| lambda_env(name))
                .flatten()
        };
        assert!(from_lambda_environment(no_token, amazon_trust_client()).is_some());
    }

    /// The bundled file holds exactly the five roots, each a whole PEM certificate.
    #[test]
    fn bundle_has_the_five_amazon_trust_services_roots() {
        let text = std::str::from_utf8(AMAZON_TRUST_SERVICES_PEM).expect("ascii");
        assert_eq!(text.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        assert_eq!(text.matches("-----END CERTIFICATE-----").count(), 5);
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            assert!(text.contains(&format!("# {name}\n")), "{name} missing");
        }
    }
}
