//! The HTTP client of the cloud model: requests, streaming, retries, deadlines and the circuit
//! breaker's bookkeeping.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use tokio::time::{timeout_at, Instant};

use super::breaker::{BreakerState, CircuitBreaker};
use super::config::{CloudConfig, CloudTimeouts, RetryPolicy, TrustRoots};
use super::wire::{SseDecoder, SseLine};
use crate::model::{
    CancelHandle, ChatModel, ChatRequest, Completion, FinishReason, GenerationClock, ModelError, Side,
    StreamEvent, TokenCount, TokenStream, Usage,
};

/// Which deadline passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutStage {
    Connect,
    FirstToken,
    BetweenTokens,
    Total,
}

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("invalid cloud configuration: {0}")]
    InvalidConfig(String),
    #[error("the cloud refused the connection")]
    ConnectionRefused,
    #[error("the cloud host name did not resolve")]
    Dns,
    #[error("TLS with the cloud failed: {0}")]
    Tls(String),
    #[error("cannot reach the cloud: {0}")]
    Connect(String),
    #[error("the cloud timed out ({0:?})")]
    Timeout(TimeoutStage),
    #[error("the cloud rejected the credentials (HTTP {status})")]
    Unauthorized { status: u16 },
    #[error("the cloud answered HTTP {status}")]
    Http { status: u16 },
    #[error("the cloud stream stopped before its end ({} characters received)", partial_text.len())]
    StreamCut { partial_text: String },
    #[error("malformed cloud response: {reason}")]
    Malformed { reason: String, partial_text: String },
    #[error("the cloud response exceeds {limit_bytes} bytes")]
    TooLarge { limit_bytes: usize, partial_text: String },
    #[error("the cloud circuit breaker is open")]
    CircuitOpen,
}

impl CloudError {
    /// Text received before the failure (for a fallback to build on, and for the record).
    pub fn partial_text(&self) -> Option<&str> {
        match self {
            CloudError::StreamCut { partial_text }
            | CloudError::Malformed { partial_text, .. }
            | CloudError::TooLarge { partial_text, .. } => Some(partial_text),
            _ => None,
        }
    }
}

/// An OpenAI-compatible cloud model.
pub struct CloudModel {
    config: CloudConfig,
    endpoint: Url,
    client: reqwest::Client,
    breaker: Arc<CircuitBreaker>,
}

impl CloudModel {
    pub fn new(config: CloudConfig) -> Result<Self, CloudError> {
        let endpoint = config.endpoint()?;
        if config.model.trim().is_empty() {
            return Err(CloudError::InvalidConfig("model name is empty".into()));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &config.extra_headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| CloudError::InvalidConfig(format!("invalid header name {name:?}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| CloudError::InvalidConfig(format!("invalid value for header {name}")))?;
            headers.insert(name, value);
        }
        if let Some(key) = &config.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                .map_err(|_| CloudError::InvalidConfig("the API key has characters a header cannot carry".into()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(config.timeouts.connect)
            .user_agent(concat!("hybridflow/", env!("CARGO_PKG_VERSION")));
        let extra = match &config.extra_root_certificates_pem {
            Some(pem) => reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| CloudError::InvalidConfig(format!("extra root certificates: {e}")))?,
            None => Vec::new(),
        };
        builder = match config.trust_roots {
            TrustRoots::Platform => builder.tls_certs_merge(extra),
            TrustRoots::Bundled => {
                let mut roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                    .iter()
                    .map(|der| reqwest::Certificate::from_der(der))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| CloudError::InvalidConfig(format!("bundled root certificates: {e}")))?;
                roots.extend(extra);
                builder.tls_certs_only(roots)
            }
        };
        let client = builder.build().map_err(|e| CloudError::InvalidConfig(e.to_string()))?;
        let breaker = Arc::new(CircuitBreaker::new(config.breaker));
        Ok(Self { config, endpoint, client, breaker })
    }

    pub fn config(&self) -> &CloudConfig {
        &self.config
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The breaker itself, for the router's gate.
    pub fn breaker(&self) -> Arc<CircuitBreaker> {
        self.breaker.clone()
    }

    /// A whole answer without streaming (`stream: false`).
    pub async fn complete(&self, request: ChatRequest) -> Result<Completion, ModelError> {
        let exchange = self.send(&request, false).await?;
        let limit = self.config.max_response_bytes;
        let mut body = Vec::new();
        let mut response = exchange.response;
        let outcome = loop {
            let chunk = match timeout_at(exchange.deadlines.next_piece(), response.chunk()).await {
                Err(_) => break Err(exchange.deadlines.timeout_error()),
                Ok(Err(e)) => {
                    // No text exists before the body parses: nothing partial to keep.
                    log::warn!("cloud body broke after {} bytes: {e}", body.len());
                    break Err(CloudError::StreamCut { partial_text: String::new() });
                }
                Ok(Ok(None)) => break Ok(()),
                Ok(Ok(Some(chunk))) => chunk,
            };
            if body.len() + chunk.len() > limit {
                break Err(CloudError::TooLarge { limit_bytes: limit, partial_text: String::new() });
            }
            body.extend_from_slice(&chunk);
        };
        let parsed = outcome.and_then(|()| {
            super::wire::parse_json(&body).map_err(|reason| CloudError::Malformed { reason, partial_text: String::new() })
        });
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(error) => return Err(self.failed(error, exchange.attempts)),
        };
        self.breaker.record_success();
        let text = parsed.text.unwrap_or_default();
        let mut clock = exchange.clock;
        clock.on_delta();
        let finish = parsed.finish_reason.unwrap_or(FinishReason::Stop);
        let usage = match parsed.usage {
            Some(u) => clock.usage(u.prompt_tokens, u.completion_tokens, TokenCount::Reported, finish),
            None => clock.usage(estimate_prompt_tokens(&request), estimate_tokens(&text), TokenCount::Estimated, finish),
        };
        Ok(Completion { text, usage })
    }

    fn failed(&self, error: CloudError, attempts: u32) -> ModelError {
        self.breaker.record_failure();
        log::warn!("cloud request to {} failed after {attempts} attempt(s): {error}", self.endpoint);
        ModelError::Cloud { error, attempts }
    }

    /// Sends the request until it gets a success status, retrying per the policy.
    async fn send(&self, request: &ChatRequest, stream: bool) -> Result<Exchange, ModelError> {
        request.validate()?;
        // The half-open trial is admitted by the guard; only an open breaker stops a request here.
        if matches!(self.breaker.state(), BreakerState::Open { .. }) {
            return Err(ModelError::Cloud { error: CloudError::CircuitOpen, attempts: 0 });
        }
        let body = super::wire::request_body(&self.config.model, request, stream);
        let timeouts = self.config.timeouts;
        let total_deadline = Instant::now() + timeouts.total;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let clock = GenerationClock::start();
            let deadlines = Deadlines::new(timeouts, total_deadline);
            let sent = timeout_at(deadlines.first_token, self.client.post(self.endpoint.clone()).json(&body).send()).await;
            let (error, retry_after) = match sent {
                Err(_) => (deadlines.timeout_error(), None),
                Ok(Err(e)) => (classify(&e), None),
                Ok(Ok(response)) if response.status().is_success() => {
                    return Ok(Exchange { response, clock, deadlines, attempts });
                }
                Ok(Ok(response)) => {
                    let status = response.status();
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let error = match status {
                        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => CloudError::Unauthorized { status: status.as_u16() },
                        _ => CloudError::Http { status: status.as_u16() },
                    };
                    (error, retry_after)
                }
            };
            let delay = retry_after.unwrap_or_else(|| backoff(&self.config.retry, attempts));
            let retryable = is_retryable(&error);
            if !retryable || attempts >= self.config.retry.max_attempts || Instant::now() + delay >= total_deadline {
                return Err(self.failed(error, attempts));
            }
            log::info!("cloud attempt {attempts} failed ({error}); retrying in {delay:?}");
            tokio::time::sleep(delay).await;
        }
    }
}

fn is_retryable(error: &CloudError) -> bool {
    match error {
        CloudError::ConnectionRefused | CloudError::Connect(_) => true,
        CloudError::Timeout(stage) => matches!(stage, TimeoutStage::Connect | TimeoutStage::FirstToken),
        CloudError::Http { status } => *status == 429 || (500..600).contains(status),
        _ => false,
    }
}

/// Exponential backoff with full jitter over its upper half: `d = min(max, base·2^(n-1))`, sleep in
/// `[d/2, d)`, so clients that failed together do not retry together.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exponential = policy.base_delay.saturating_mul(1 << (attempt - 1).min(16));
    let ceiling = exponential.min(policy.max_delay);
    let jitter = RandomState::new().hash_one(attempt) % 1_000;
    ceiling / 2 + ceiling / 2 * (jitter as u32) / 1_000
}

/// Tells refused, DNS, TLS and other connection failures apart from reqwest's error chain.
fn classify(error: &reqwest::Error) -> CloudError {
    if error.is_timeout() {
        return CloudError::Timeout(TimeoutStage::Connect);
    }
    // rustls errors arrive wrapped in io::Errors, whose `source()` skips the wrapped error itself:
    // descend through `get_ref()` for those.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return CloudError::Tls(tls.to_string());
        }
        if current.to_string() == "dns error" {
            return CloudError::Dns;
        }
        source = match current.downcast_ref::<std::io::Error>() {
            Some(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => return CloudError::ConnectionRefused,
            Some(io) => io.get_ref().map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    CloudError::Connect(error.to_string())
}

/// A rough token count (4 characters a token) for servers that report no usage.
fn estimate_tokens(text: &str) -> u32 {
    (text.chars().count() as u32).div_ceil(4)
}

pub(crate) fn estimate_prompt_tokens(request: &ChatRequest) -> u32 {
    request.messages.iter().map(|m| estimate_tokens(&m.content) + 4).sum()
}

#[derive(Clone, Copy, Debug)]
struct Deadlines {
    first_token: Instant,
    between_tokens: Duration,
    total: Instant,
    got_first_piece: bool,
}

impl Deadlines {
    fn new(timeouts: CloudTimeouts, total: Instant) -> Self {
        let first_token = (Instant::now() + timeouts.first_token).min(total);
        Self { first_token, between_tokens: timeouts.between_tokens, total, got_first_piece: false }
    }

    /// When the next piece must have arrived.
    fn next_piece(&self) -> Instant {
        if self.got_first_piece {
            (Instant::now() + self.between_tokens).min(self.total)
        } else {
            self.first_token
        }
    }

    /// The error for a passed deadline, named after the one that was nearest.
    fn timeout_error(&self) -> CloudError {
        let now = Instant::now();
        CloudError::Timeout(if now >= self.total {
            TimeoutStage::Total
        } else if self.got_first_piece {
            TimeoutStage::BetweenTokens
        } else {
            TimeoutStage::FirstToken
        })
    }
}

struct Exchange {
    response: reqwest::Response,
    clock: GenerationClock,
    deadlines: Deadlines,
    attempts: u32,
}

/// State of one streamed cloud generation.
struct CloudGeneration {
    /// Dropping the body stream closes the connection: that is how cancellation reaches the server.
    body: Option<BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
    decoder: SseDecoder,
    pending: std::collections::VecDeque<Result<StreamEvent, ModelError>>,
    clock: GenerationClock,
    deadlines: Deadlines,
    attempts: u32,
    text: String,
    bytes_read: usize,
    limit: usize,
    finish_reason: Option<FinishReason>,
    usage: Option<super::wire::WireUsage>,
    prompt_estimate: u32,
    breaker: Arc<CircuitBreaker>,
    cancel: CancelHandle,
}

impl CloudGeneration {
    fn fail(&mut self, error: CloudError) {
        self.body = None;
        self.breaker.record_failure();
        log::warn!("cloud stream failed: {error}");
        self.pending.push_back(Err(ModelError::Cloud { error, attempts: self.attempts }));
    }

    fn finish(&mut self, reason: FinishReason) {
        self.body = None;
        let usage = match self.usage.take() {
            Some(u) => self.clock.usage(u.prompt_tokens, u.completion_tokens, TokenCount::Reported, reason),
            None => {
                let completion = if reason == FinishReason::Cancelled { self.clock.deltas() } else { estimate_tokens(&self.text) };
                self.clock.usage(self.prompt_estimate, completion, TokenCount::Estimated, reason)
            }
        };
        if reason != FinishReason::Cancelled {
            self.breaker.record_success();
        }
        self.pending.push_back(Ok(StreamEvent::Finished(usage)));
    }

    fn on_line(&mut self, line: SseLine) {
        match line {
            SseLine::Done => self.finish(self.finish_reason.unwrap_or(FinishReason::Stop)),
            SseLine::Data(data) => match super::wire::parse_json(&data) {
                Err(reason) => self.fail(CloudError::Malformed { reason, partial_text: self.text.clone() }),
                Ok(parsed) => {
                    if let Some(text) = parsed.text.filter(|t| !t.is_empty()) {
                        self.clock.on_delta();
                        self.text.push_str(&text);
                        self.pending.push_back(Ok(StreamEvent::Delta(text)));
                    }
                    self.finish_reason = parsed.finish_reason.or(self.finish_reason);
                    self.usage = parsed.usage.or(self.usage.take());
                }
            },
        }
    }

    fn on_bytes(&mut self, bytes: &[u8]) {
        self.bytes_read += bytes.len();
        if self.bytes_read > self.limit {
            return self.fail(CloudError::TooLarge { limit_bytes: self.limit, partial_text: self.text.clone() });
        }
        match self.decoder.push(bytes, self.limit) {
            Err(reason) => self.fail(CloudError::Malformed { reason, partial_text: self.text.clone() }),
            Ok(lines) => {
                for line in lines {
                    if self.body.is_none() {
                        break; // finished or failed on an earlier line
                    }
                    self.on_line(line);
                }
            }
        }
    }

    fn on_end_of_body(&mut self) {
        match self.decoder.finish() {
            Err(reason) => return self.fail(CloudError::Malformed { reason, partial_text: self.text.clone() }),
            Ok(Some(line)) => self.on_line(line),
            Ok(None) => {}
        }
        if self.body.is_some() {
            // No [DONE]: complete only if the server said why it stopped.
            match self.finish_reason {
                Some(reason) => self.finish(reason),
                None => self.fail(CloudError::StreamCut { partial_text: self.text.clone() }),
            }
        }
    }
}

async fn next_cloud_event(
    mut generation: CloudGeneration,
) -> Option<(Result<StreamEvent, ModelError>, CloudGeneration)> {
    loop {
        if let Some(event) = generation.pending.pop_front() {
            return Some((event, generation));
        }
        let deadline = generation.deadlines.next_piece();
        let cancel = generation.cancel.clone();
        let body = generation.body.as_mut()?;
        let piece = tokio::select! {
            biased;
            _ = cancel.token().cancelled() => {
                generation.finish(FinishReason::Cancelled);
                continue;
            }
            piece = timeout_at(deadline, body.next()) => piece,
        };
        match piece {
            Err(_) => {
                let error = generation.deadlines.timeout_error();
                generation.fail(error)
            }
            Ok(None) => generation.on_end_of_body(),
            Ok(Some(Err(_))) => {
                let partial_text = generation.text.clone();
                generation.fail(CloudError::StreamCut { partial_text })
            }
            Ok(Some(Ok(bytes))) => {
                generation.deadlines.got_first_piece = true;
                generation.on_bytes(&bytes)
            }
        }
    }
}

impl ChatModel for CloudModel {
    fn side(&self) -> Side {
        Side::Cloud
    }

    fn name(&self) -> &str {
        &self.config.model
    }

    fn cost(&self, usage: &Usage) -> f64 {
        self.config.price.cost(usage)
    }

    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<TokenStream, ModelError>> {
        Box::pin(async move {
            let exchange = self.send(&request, true).await?;
            let cancel = CancelHandle::default();
            let generation = CloudGeneration {
                body: Some(exchange.response.bytes_stream().boxed()),
                decoder: SseDecoder::default(),
                pending: Default::default(),
                clock: exchange.clock,
                deadlines: exchange.deadlines,
                attempts: exchange.attempts,
                text: String::new(),
                bytes_read: 0,
                limit: self.config.max_response_bytes,
                finish_reason: None,
                usage: None,
                prompt_estimate: estimate_prompt_tokens(&request),
                breaker: self.breaker.clone(),
                cancel: cancel.clone(),
            };
            Ok(TokenStream::new(futures::stream::unfold(generation, next_cloud_event).boxed(), cancel))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered_within_the_upper_half() {
        let policy = RetryPolicy { max_attempts: 5, base_delay: Duration::from_millis(100), max_delay: Duration::from_millis(300) };
        for attempt in 1..=6 {
            let ceiling = (Duration::from_millis(100) * (1 << (attempt - 1))).min(Duration::from_millis(300));
            let delay = backoff(&policy, attempt);
            assert!(delay >= ceiling / 2 && delay <= ceiling, "attempt {attempt}: {delay:?}");
        }
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(is_retryable(&CloudError::Http { status: 503 }));
        assert!(is_retryable(&CloudError::Http { status: 429 }));
        assert!(is_retryable(&CloudError::ConnectionRefused));
        assert!(is_retryable(&CloudError::Timeout(TimeoutStage::FirstToken)));
        assert!(!is_retryable(&CloudError::Timeout(TimeoutStage::BetweenTokens)));
        assert!(!is_retryable(&CloudError::Unauthorized { status: 401 }));
        assert!(!is_retryable(&CloudError::Http { status: 400 }));
        assert!(!is_retryable(&CloudError::Tls("x".into())));
        assert!(!is_retryable(&CloudError::Dns));
    }
}
