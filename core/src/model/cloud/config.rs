//! Cloud endpoint configuration and the URL policy.

use std::fmt;
use std::time::Duration;

use reqwest::Url;

use super::CloudError;
use crate::model::Usage;

/// An API key. Its `Debug` and `Display` never show it; only the HTTP header sees the value, and
/// its memory is wiped when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(zeroize::Zeroizing<String>);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(zeroize::Zeroizing::new(key.into()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Price per million tokens, in the app's currency, for the money budget.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Price {
    pub input_per_million: f64,
    pub output_per_million: f64,
}

impl Price {
    pub fn cost(&self, usage: &Usage) -> f64 {
        self.cost_of(u64::from(usage.prompt_tokens), u64::from(usage.completion_tokens))
    }

    pub fn cost_of(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input_per_million + completion_tokens as f64 * self.output_per_million) / 1e6
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloudTimeouts {
    pub connect: Duration,
    /// From sending the request to the first text delta.
    pub first_token: Duration,
    /// Longest silence between two pieces of the response.
    pub between_tokens: Duration,
    /// The whole request, retries included.
    pub total: Duration,
}

impl Default for CloudTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_token: Duration::from_secs(30),
            between_tokens: Duration::from_secs(15),
            total: Duration::from_secs(120),
        }
    }
}

/// Retries of 429, 5xx, refused connections and timeouts before the first token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 3, base_delay: Duration::from_millis(250), max_delay: Duration::from_secs(8) }
    }
}

/// After `failure_threshold` failed requests in a row the cloud is not offered for `open_for`; then
/// one trial request decides whether it closes again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failure_threshold: 3, open_for: Duration::from_secs(30) }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct CloudConfig {
    /// The API root, e.g. `https://api.example.com/v1`; requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<ApiKey>,
    pub extra_headers: Vec<(String, String)>,
    pub price: Price,
    pub timeouts: CloudTimeouts,
    pub retry: RetryPolicy,
    pub breaker: BreakerConfig,
    /// Upper bound on one response's size (body or whole stream).
    pub max_response_bytes: usize,
    /// PEM certificates to trust in addition to the roots (private CAs, tests).
    pub extra_root_certificates_pem: Option<String>,
    pub trust_roots: TrustRoots,
}

/// Which certificate authorities the cloud's certificate is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustRoots {
    /// The operating system's verifier and store (iOS, macOS, Linux, Windows).
    Platform,
    /// Mozilla's root store, compiled into the SDK. The default on Android, where the platform
    /// verifier needs a JNI context that a library loaded through JNA does not get.
    Bundled,
}

impl Default for TrustRoots {
    fn default() -> Self {
        if cfg!(target_os = "android") {
            Self::Bundled
        } else {
            Self::Platform
        }
    }
}

impl CloudConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            extra_headers: Vec::new(),
            price: Price::default(),
            timeouts: CloudTimeouts::default(),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            max_response_bytes: 4 * 1024 * 1024,
            extra_root_certificates_pem: None,
            trust_roots: TrustRoots::default(),
        }
    }

    /// The chat-completions URL, checked against the policy: https, or http to a loopback address.
    pub fn endpoint(&self) -> Result<Url, CloudError> {
        let base = Url::parse(&self.base_url)
            .map_err(|e| CloudError::InvalidConfig(format!("base_url {:?}: {e}", self.base_url)))?;
        check_url_policy(&base)?;
        let joined = format!("{}/chat/completions", base.as_str().trim_end_matches('/'));
        Url::parse(&joined).map_err(|e| CloudError::InvalidConfig(e.to_string()))
    }
}

/// Cloud traffic carries user data and a key: https only, except loopback for development and tests.
pub fn check_url_policy(url: &Url) -> Result<(), CloudError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(CloudError::InvalidConfig(format!(
            "{} must use https (plain http is allowed only for loopback addresses)",
            url.host_str().unwrap_or("the cloud URL")
        ))),
        other => Err(CloudError::InvalidConfig(format!("unsupported URL scheme {other:?}"))),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(base: &str) -> Result<Url, CloudError> {
        CloudConfig::new(base, "m").endpoint()
    }

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        assert_eq!(endpoint("https://api.example.com/v1").unwrap().as_str(), "https://api.example.com/v1/chat/completions");
        assert!(endpoint("http://127.0.0.1:8080/v1/").is_ok());
        assert!(endpoint("http://127.8.9.10/v1").is_ok());
        assert!(endpoint("http://[::1]:9000/v1").is_ok());
        assert!(endpoint("http://localhost/v1").is_ok());
        for bad in ["http://api.example.com/v1", "http://10.0.0.2/v1", "http://localhost.evil.com/v1", "ftp://127.0.0.1/", "not a url"] {
            assert!(matches!(endpoint(bad), Err(CloudError::InvalidConfig(_))), "{bad} accepted");
        }
    }

    #[test]
    fn api_key_is_redacted() {
        let key = ApiKey::new("sk-secret-123");
        let mut config = CloudConfig::new("https://x.test/v1", "m");
        config.api_key = Some(key.clone());
        assert!(!format!("{key:?} {key} {config:?}").contains("sk-secret-123"));
        assert_eq!(key.expose(), "sk-secret-123");
    }

    #[test]
    fn cost_uses_per_million_prices() {
        let price = Price { input_per_million: 1.0, output_per_million: 4.0 };
        let usage = crate::model::GenerationClock::start().usage(
            1_000_000, 500_000, crate::model::TokenCount::Reported, crate::model::FinishReason::Stop);
        assert!((price.cost(&usage) - 3.0).abs() < 1e-9);
    }
}
