//! One abstraction for "a chat model": messages in, a stream of text deltas out, then a usage record.
//! The edge (mistral.rs, on the device) and the cloud (OpenAI-compatible HTTP) both implement it, so
//! the planner and the scheduler never know which side they talk to.

pub mod catalog;
pub mod cloud;
pub mod edge;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{BoxStream, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// Where a model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Edge,
    Cloud,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self { role: Role::System, content: content.into() }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self { role: Role::User, content: content.into() }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: content.into() }
    }
}

/// One generation request. Greedy decoding unless a positive temperature is set.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    /// `None` or `<= 0` means greedy (deterministic) decoding.
    pub temperature: Option<f32>,
    pub stop: Vec<String>,
    /// When set, the output is constrained to JSON matching this schema.
    pub json_schema: Option<serde_json::Value>,
    /// Report each generated token's log-probability in the closing [`Usage`] (the mistral.rs
    /// edge engine does; the others report none).
    pub token_logprobs: bool,
}

impl ChatRequest {
    pub const DEFAULT_MAX_TOKENS: u32 = 256;

    pub fn new(messages: Vec<Message>) -> Self {
        Self {
            messages,
            max_tokens: Self::DEFAULT_MAX_TOKENS,
            temperature: None,
            stop: Vec::new(),
            json_schema: None,
            token_logprobs: false,
        }
    }

    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = max_tokens;
        self
    }

    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    pub fn with_stop(mut self, stop: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.stop = stop.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_token_logprobs(mut self) -> Self {
        self.token_logprobs = true;
        self
    }

    pub fn with_json_schema(mut self, schema: serde_json::Value) -> Self {
        self.json_schema = Some(schema);
        self
    }

    /// The sampling temperature when sampling is random, `None` for greedy decoding.
    pub fn sampling_temperature(&self) -> Option<f32> {
        self.temperature.filter(|t| *t > 0.0)
    }

    pub(crate) fn validate(&self) -> Result<(), ModelError> {
        if self.messages.is_empty() {
            return Err(ModelError::InvalidRequest("no messages".into()));
        }
        if self.max_tokens == 0 {
            return Err(ModelError::InvalidRequest("max_tokens must be at least 1".into()));
        }
        if let Some(t) = self.temperature {
            if !t.is_finite() || t > 2.0 {
                return Err(ModelError::InvalidRequest(format!("temperature {t} outside 0..=2")));
            }
        }
        if let Some(schema) = &self.json_schema {
            if !schema.is_object() {
                return Err(ModelError::InvalidRequest("json_schema must be a JSON object".into()));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End of sequence or a stop sequence.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// Cancelled by the caller (cancel handle or drop).
    Cancelled,
}

/// Who counted the tokens in a [`Usage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenCount {
    /// The engine or server that ran the model reported them.
    Reported,
    /// Counted by HybridFlow from the streamed deltas (the run was cut short, or the server gave none).
    Estimated,
}

/// What one generation cost. Times are measured by HybridFlow on the caller's side, so edge and
/// cloud figures compare directly (the cloud's include the network).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub token_count: TokenCount,
    /// From sending the request to the first text delta; `None` if no token came.
    pub time_to_first_token: Option<Duration>,
    pub total_time: Duration,
    /// Tokens after the first divided by the time after the first (0 with fewer than 2 tokens).
    pub decode_tokens_per_second: f64,
    pub finish_reason: FinishReason,
    /// Natural-log probability of each streamed token, when the request asked for them and the
    /// engine reports them; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_logprobs: Vec<f32>,
}

/// One item of a [`TokenStream`].
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    Delta(String),
    /// Always the last item of a stream that did not fail.
    Finished(Usage),
}

/// Errors of a generation (loading errors have their own type, [`edge::EdgeLoadError`]).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("the edge engine failed: {0}")]
    Engine(String),
    #[error("{error} (after {attempts} attempt(s))")]
    Cloud { error: cloud::CloudError, attempts: u32 },
}

/// Cancels a running generation from anywhere; cloneable, cheap.
#[derive(Clone, Debug, Default)]
pub struct CancelHandle(CancellationToken);

impl CancelHandle {
    pub fn cancel(&self) {
        self.0.cancel();
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.0
    }
}

/// A generation in progress: text deltas, then [`StreamEvent::Finished`]. Dropping it stops the
/// generation; so does [`CancelHandle::cancel`], after which the stream ends with
/// `FinishReason::Cancelled` and the usage so far.
pub struct TokenStream {
    events: BoxStream<'static, Result<StreamEvent, ModelError>>,
    cancel: CancelHandle,
}

impl TokenStream {
    /// Wraps a stream of events (for implementations of [`ChatModel`] outside this crate).
    pub fn new(
        events: BoxStream<'static, Result<StreamEvent, ModelError>>,
        cancel: CancelHandle,
    ) -> Self {
        Self { events, cancel }
    }

    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// Drains the stream into the full text and its usage.
    pub async fn collect_text(mut self) -> Result<Completion, ModelError> {
        let mut text = String::new();
        while let Some(event) = self.next().await {
            match event? {
                StreamEvent::Delta(delta) => text.push_str(&delta),
                StreamEvent::Finished(usage) => return Ok(Completion { text, usage }),
            }
        }
        Err(ModelError::Engine("stream ended without a usage record".into()))
    }
}

impl Stream for TokenStream {
    type Item = Result<StreamEvent, ModelError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_next_unpin(cx)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub text: String,
    pub usage: Usage,
}

/// A chat model, on the device or in the cloud.
pub trait ChatModel: Send + Sync {
    fn side(&self) -> Side;
    /// A short name for logs and events (file name or cloud model id).
    fn name(&self) -> &str;
    /// Starts a generation. Errors in the request come back here; errors during generation come
    /// through the stream.
    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<TokenStream, ModelError>>;
    /// What serves the generations, for the events: the edge's engine and device ("ggml on
    /// Vulkan0 (…)"), the cloud's model id.
    fn served_by(&self) -> String {
        self.name().to_owned()
    }
    /// Money a generation with this usage costs (0 on the device).
    fn cost(&self, _usage: &Usage) -> f64 {
        0.0
    }
}

/// Clock for one generation, shared by both backends so their [`Usage`] figures mean the same.
#[derive(Debug)]
pub(crate) struct GenerationClock {
    started: Instant,
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    deltas: u32,
}

impl GenerationClock {
    pub(crate) fn start() -> Self {
        Self { started: Instant::now(), first_token: None, last_token: None, deltas: 0 }
    }

    pub(crate) fn on_delta(&mut self) {
        let now = Instant::now();
        self.first_token.get_or_insert(now);
        self.last_token = Some(now);
        self.deltas += 1;
    }

    /// Number of text deltas seen: an estimate of completion tokens when nobody reports them.
    pub(crate) fn deltas(&self) -> u32 {
        self.deltas
    }

    pub(crate) fn usage(
        &self,
        prompt_tokens: u32,
        completion_tokens: u32,
        token_count: TokenCount,
        finish_reason: FinishReason,
    ) -> Usage {
        let decode_tokens_per_second = match (self.first_token, self.last_token) {
            (Some(first), Some(last)) if completion_tokens > 1 && last > first => {
                f64::from(completion_tokens - 1) / (last - first).as_secs_f64()
            }
            _ => 0.0,
        };
        Usage {
            prompt_tokens,
            completion_tokens,
            token_count,
            time_to_first_token: self.first_token.map(|t| t - self.started),
            total_time: self.started.elapsed(),
            decode_tokens_per_second,
            finish_reason,
            token_logprobs: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_validation_rejects_bad_input() {
        assert!(matches!(ChatRequest::new(vec![]).validate(), Err(ModelError::InvalidRequest(_))));
        let ok = ChatRequest::new(vec![Message::user("hi")]);
        assert!(ok.validate().is_ok());
        assert!(ok.clone().with_max_tokens(0).validate().is_err());
        assert!(ok.clone().with_temperature(f32::NAN).validate().is_err());
        assert!(ok.clone().with_temperature(3.0).validate().is_err());
        assert!(ok.clone().with_json_schema(serde_json::json!([1])).validate().is_err());
        assert!(ok.with_json_schema(serde_json::json!({"type": "object"})).validate().is_ok());
    }

    #[test]
    fn zero_temperature_means_greedy() {
        let req = ChatRequest::new(vec![Message::user("hi")]);
        assert_eq!(req.sampling_temperature(), None);
        assert_eq!(req.clone().with_temperature(0.0).sampling_temperature(), None);
        assert_eq!(req.with_temperature(0.7).sampling_temperature(), Some(0.7));
    }

    #[test]
    fn clock_computes_decode_rate_from_tokens_after_the_first() {
        let mut clock = GenerationClock::start();
        clock.on_delta();
        std::thread::sleep(Duration::from_millis(20));
        clock.on_delta();
        let usage = clock.usage(5, 2, TokenCount::Reported, FinishReason::Stop);
        assert!(usage.time_to_first_token.is_some());
        assert!(usage.decode_tokens_per_second > 0.0 && usage.decode_tokens_per_second < 60.0);
        let none = GenerationClock::start().usage(5, 0, TokenCount::Estimated, FinishReason::Cancelled);
        assert_eq!(none.decode_tokens_per_second, 0.0);
        assert_eq!(none.time_to_first_token, None);
    }
}
