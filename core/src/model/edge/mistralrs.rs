//! The default edge engine: mistral.rs running the GGUF (behind the `mistralrs` feature, so parsers
//! and policies can be built and fuzzed without compiling mistral.rs, and the lean Android library
//! leaves it out).

use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use mistralrs::{
    Constraint, GgufModelBuilder, NormalRequest, Request, RequestBuilder, RequestLike, Response,
    SamplingParams, StopTokens, TextMessageRole, TokenSource,
};
use tokio::sync::mpsc;

use super::stream::{self, Translated};
use super::{EdgeConfig, EdgeLoadError};
use crate::model::{ChatRequest, FinishReason, GenerationClock, ModelError, Role, TokenCount, TokenStream};

/// mistral.rs running one GGUF. Cheap to share; requests from many tasks run concurrently.
pub(super) struct MistralRsEngine {
    engine: Arc<mistralrs::Model>,
}

impl MistralRsEngine {
    /// Builds the engine for a file that passed the shared checks. Blocking parts run off the
    /// async threads.
    pub(super) async fn load(config: &EdgeConfig) -> Result<Self, EdgeLoadError> {
        let (dir, file) = split_model_path(&config.model_path)?;
        let builder = GgufModelBuilder::new(dir, vec![file])
            .with_token_source(TokenSource::None)
            .with_max_num_seqs(config.max_concurrent_sequences.max(1));
        let runtime = tokio::runtime::Handle::current();
        let engine = tokio::task::spawn_blocking(move || runtime.block_on(builder.build()))
            .await
            .map_err(|e| EdgeLoadError::Engine(e.to_string()))?
            .map_err(|e| EdgeLoadError::Engine(format!("mistral.rs: {e:#}")))?;
        Ok(Self { engine: Arc::new(engine) })
    }

    /// What runs the model in this build.
    pub(super) fn device() -> &'static str {
        if cfg!(feature = "metal") {
            "Metal"
        } else {
            "CPU"
        }
    }
}

fn split_model_path(path: &Path) -> Result<(String, String), EdgeLoadError> {
    let file = path.file_name().and_then(|f| f.to_str());
    let dir = path.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d });
    match (dir.and_then(|d| d.to_str()), file) {
        (Some(dir), Some(file)) => Ok((dir.to_owned(), file.to_owned())),
        _ => Err(EdgeLoadError::MissingFile { path: path.to_owned() }),
    }
}

/// A token's log-probability as mistral.rs 0.8.1 reports it (log10; later versions switch to the
/// natural log, EricLBuehler/mistral.rs#2327) in natural log, as OpenAI's API reports it. Greedy
/// requests run as top-k 1 at temperature 1, so the figure is of the full softmax probability.
fn natural_logprob(engine_logprob: f32) -> f32 {
    engine_logprob * std::f32::consts::LN_10
}

/// Translates our request into mistral.rs's: greedy unless a temperature is set; constrained
/// decoding per ARCHITECTURE.md's measured settings (no flexible whitespace, stop on endoftext).
fn engine_request(request: &ChatRequest, responder: mpsc::Sender<Response>) -> NormalRequest {
    let mut sampling = match request.sampling_temperature() {
        None => SamplingParams::deterministic(),
        Some(t) => SamplingParams { temperature: Some(f64::from(t)), ..SamplingParams::neutral() },
    };
    sampling.max_len = Some(request.max_tokens as usize);
    let mut stop = request.stop.clone();
    let constraint = match &request.json_schema {
        Some(schema) => {
            let mut schema = schema.clone();
            if let Some(object) = schema.as_object_mut() {
                object
                    .entry("x-guidance")
                    .or_insert_with(|| serde_json::json!({"whitespace_flexible": false}));
            }
            stop.push("<|endoftext|>".into());
            Constraint::JsonSchema(schema)
        }
        None => Constraint::None,
    };
    if !stop.is_empty() {
        sampling.stop_toks = Some(StopTokens::Seqs(stop));
    }

    let mut builder = RequestBuilder::new();
    for message in &request.messages {
        let role = match message.role {
            Role::System => TextMessageRole::System,
            Role::User => TextMessageRole::User,
            Role::Assistant => TextMessageRole::Assistant,
        };
        builder = builder.add_message(role, &message.content);
    }
    NormalRequest {
        messages: builder.take_messages(),
        sampling_params: sampling,
        response: responder,
        return_logprobs: request.token_logprobs,
        is_streaming: true,
        id: 0,
        constraint,
        suffix: None,
        tools: None,
        tool_choice: None,
        logits_processors: None,
        return_raw_logits: false,
        web_search_options: None,
        model_id: None,
        truncate_sequence: false,
    }
}

fn finish_reason(engine_reason: &str) -> FinishReason {
    match engine_reason {
        "length" => FinishReason::Length,
        "canceled" => FinishReason::Cancelled,
        _ => FinishReason::Stop,
    }
}

/// mistral.rs's responses as the caller sees them.
fn translate(response: Response, clock: &GenerationClock) -> Result<Translated, ModelError> {
    match response {
        Response::Chunk(chunk) => {
            let Some(choice) = chunk.choices.into_iter().next() else {
                return Ok(Translated { delta: None, logprob: None, finished: None });
            };
            let finished = choice.finish_reason.map(|reason| {
                let reason = finish_reason(&reason);
                match chunk.usage {
                    Some(u) => clock.usage(u.prompt_tokens as u32, u.completion_tokens as u32, TokenCount::Reported, reason),
                    None => clock.usage(0, clock.deltas(), TokenCount::Estimated, reason),
                }
            });
            Ok(Translated { delta: choice.delta.content, logprob: choice.logprobs.map(|l| natural_logprob(l.logprob)), finished })
        }
        Response::ValidationError(e) => Err(ModelError::InvalidRequest(e.to_string())),
        Response::InternalError(e) => Err(ModelError::Engine(e.to_string())),
        Response::ModelError(message, _) => Err(ModelError::Engine(message)),
        _ => Err(ModelError::Engine("unexpected response kind from mistral.rs".into())),
    }
}

impl MistralRsEngine {
    pub(super) fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<TokenStream, ModelError>> {
        Box::pin(async move {
            request.validate()?;
            // Room for a burst of tokens so the engine never waits on a slow consumer.
            let (responder, responses) = mpsc::channel(64);
            let clock = GenerationClock::start();
            let sender = self.engine.inner().get_sender(None).map_err(|e| ModelError::Engine(e.to_string()))?;
            sender
                .send(Request::Normal(Box::new(engine_request(&request, responder))))
                .await
                .map_err(|_| ModelError::Engine("the engine has stopped".into()))?;
            // Dropping the receiver is what makes mistral.rs cancel the sequence.
            Ok(stream::token_stream(responses, clock, translate, "mistral.rs closed the stream"))
        })
    }
}
