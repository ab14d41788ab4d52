//! The caller's side of an edge generation, shared by both engines: the engine's messages come
//! over a channel (dropping the receiver is what stops the engine), each translated into text
//! and/or the closing usage; cancelling ends the stream at once with the usage so far.

use futures::StreamExt;
use tokio::sync::mpsc;

use crate::model::{CancelHandle, FinishReason, GenerationClock, ModelError, StreamEvent, TokenCount, TokenStream, Usage};

/// What one engine message means to the caller.
pub(super) struct Translated {
    pub delta: Option<String>,
    /// The natural-log probability of the token behind `delta`, when the engine reports it.
    pub logprob: Option<f32>,
    /// Set by the message that ends the generation.
    pub finished: Option<Usage>,
}

/// Turns an engine's message into text and/or the final usage (the clock is the generation's,
/// for usage figures), or an error that ends the stream.
pub(super) type Translate<M> = fn(M, &GenerationClock) -> Result<Translated, ModelError>;

struct Generation<M> {
    messages: Option<mpsc::Receiver<M>>,
    cancel: CancelHandle,
    clock: GenerationClock,
    finished: Option<Usage>,
    logprobs: Vec<f32>,
    translate: Translate<M>,
    /// The error when the engine's channel closes before the generation ended.
    closed: &'static str,
}

/// The token stream for a generation whose engine messages arrive on `messages`.
pub(super) fn token_stream<M: Send + 'static>(
    messages: mpsc::Receiver<M>,
    clock: GenerationClock,
    translate: Translate<M>,
    closed: &'static str,
) -> TokenStream {
    let cancel = CancelHandle::default();
    let generation = Generation { messages: Some(messages), cancel: cancel.clone(), clock, finished: None, logprobs: Vec::new(), translate, closed };
    TokenStream::new(futures::stream::unfold(generation, next_event).boxed(), cancel)
}

async fn next_event<M>(mut generation: Generation<M>) -> Option<(Result<StreamEvent, ModelError>, Generation<M>)> {
    loop {
        if let Some(mut usage) = generation.finished.take() {
            generation.messages = None;
            usage.token_logprobs = std::mem::take(&mut generation.logprobs);
            return Some((Ok(StreamEvent::Finished(usage)), generation));
        }
        let messages = generation.messages.as_mut()?;
        let message = tokio::select! {
            biased;
            _ = generation.cancel.token().cancelled() => {
                let deltas = generation.clock.deltas();
                generation.finished = Some(generation.clock.usage(0, deltas, TokenCount::Estimated, FinishReason::Cancelled));
                continue;
            }
            message = messages.recv() => message,
        };
        let translated = match message {
            Some(message) => (generation.translate)(message, &generation.clock),
            None => Err(ModelError::Engine(generation.closed.into())),
        };
        let event = match translated {
            Ok(Translated { delta, logprob, finished }) => {
                if finished.is_some() {
                    generation.finished = finished;
                }
                generation.logprobs.extend(logprob);
                match delta {
                    Some(text) if !text.is_empty() => {
                        generation.clock.on_delta();
                        Ok(StreamEvent::Delta(text))
                    }
                    _ => continue,
                }
            }
            Err(error) => {
                generation.messages = None;
                Err(error)
            }
        };
        return Some((event, generation));
    }
}
