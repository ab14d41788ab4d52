//! The ggml edge engine: llama.cpp running the GGUF on the CPU or, when the app allows it and the
//! probe passes, on a Vulkan GPU (the Android GPU path: mistral.rs has no Vulkan backend).
//!
//! One worker thread per model owns the llama.cpp model and context (a context must not be
//! shared between threads) and decodes requests one after another; each request streams its
//! text back over a channel. Dropping the stream, or cancelling it, stops the decoding at the
//! next token.

mod backends;
mod chat_template;
mod placement;
mod probe;
mod text;
mod worker;

use std::sync::mpsc as std_mpsc;

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use self::worker::Worker;
use super::load::Placement;
use super::stream::{self, Translated};
use super::{EdgeConfig, EdgeLoadError};
use crate::model::{CancelHandle, ChatRequest, FinishReason, GenerationClock, ModelError, TokenCount, TokenStream};

pub(super) struct GgmlEngine {
    jobs: std_mpsc::Sender<Job>,
}

pub(super) struct Job {
    request: ChatRequest,
    events: mpsc::Sender<WorkerEvent>,
    cancel: CancelHandle,
}

/// What the worker sends back for one request.
pub(super) enum WorkerEvent {
    Delta(String),
    Done { prompt_tokens: u32, completion_tokens: u32, reason: FinishReason },
    Failed(ModelError),
}

impl GgmlEngine {
    /// Loads the model on its worker thread: the CPU, or a Vulkan GPU that passes the probe.
    pub(super) async fn load(config: &EdgeConfig) -> Result<(Self, Placement), EdgeLoadError> {
        let (jobs, job_queue) = std_mpsc::channel::<Job>();
        let (loaded, on_loaded) = oneshot::channel();
        let config = config.clone();
        std::thread::Builder::new()
            .name("hybridflow-ggml".into())
            .spawn(move || {
                let backend = match backends::cpu() {
                    Ok(backend) => backend,
                    Err(e) => return drop(loaded.send(Err(e))),
                };
                let (model, placement) = match placement::place_model(backend, &config) {
                    Ok(placed) => placed,
                    Err(e) => return drop(loaded.send(Err(e))),
                };
                let worker = match Worker::new(backend, &model) {
                    Ok(worker) => worker,
                    Err(e) => return drop(loaded.send(Err(e))),
                };
                if loaded.send(Ok(placement)).is_ok() {
                    worker.serve(job_queue);
                }
            })
            .map_err(|e| EdgeLoadError::Engine(format!("cannot start the ggml thread: {e}")))?;
        let placement = on_loaded.await.map_err(|_| EdgeLoadError::Engine("the ggml thread stopped while loading".into()))??;
        Ok((Self { jobs }, placement))
    }

    pub(super) fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<TokenStream, ModelError>> {
        Box::pin(async move {
            request.validate()?;
            let clock = GenerationClock::start();
            // Room for a burst of tokens so the worker never waits on a slow consumer.
            let (events, receiver) = mpsc::channel(64);
            let stream = stream::token_stream(receiver, clock, translate, "the ggml worker stopped during the request");
            self.jobs
                .send(Job { request, events, cancel: stream.cancel_handle() })
                .map_err(|_| ModelError::Engine("the ggml worker has stopped".into()))?;
            Ok(stream)
        })
    }
}

/// The worker's messages as the caller sees them.
fn translate(event: WorkerEvent, clock: &GenerationClock) -> Result<Translated, ModelError> {
    match event {
        WorkerEvent::Delta(text) => Ok(Translated { delta: Some(text), logprob: None, finished: None }),
        WorkerEvent::Done { prompt_tokens, completion_tokens, reason } => Ok(Translated {
            delta: None,
            logprob: None,
            finished: Some(clock.usage(prompt_tokens, completion_tokens, TokenCount::Reported, reason)),
        }),
        WorkerEvent::Failed(error) => Err(error),
    }
}
