//! A model's decoding state on its worker thread: the chat template, the prompt pass in
//! batches, sampling (greedy, temperature, JSON-schema grammar), stop strings, and the stream of
//! text back to the caller.

use std::num::NonZeroU32;
use std::sync::mpsc as std_mpsc;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use super::chat_template::ChatTemplate;
use super::text::{Scanned, StopScanner, Utf8Pieces};
use super::{Job, WorkerEvent};
use crate::model::edge::EdgeLoadError;
use crate::model::{ChatRequest, FinishReason, ModelError};

/// Context size: the model's own, capped so the KV cache stays phone-sized.
const MAX_CONTEXT_TOKENS: u32 = 4096;
const BATCH_TOKENS: u32 = 512;

/// How a chat becomes prompt text, chosen once per model.
enum PromptFormat {
    /// The GGUF's Jinja template, rendered as mistral.rs renders it.
    Jinja(Box<ChatTemplate>),
    /// llama.cpp's built-in rendering of known template shapes (ChatML for a model without a
    /// template), when minijinja cannot compile the model's.
    LlamaCpp(LlamaChatTemplate),
}

/// A model's decoding state on the worker thread.
pub(super) struct Worker<'model> {
    model: &'model LlamaModel,
    pub(super) context: LlamaContext<'model>,
    template: PromptFormat,
    batch: LlamaBatch<'static>,
}

impl<'model> Worker<'model> {
    pub(super) fn new(backend: &LlamaBackend, model: &'model LlamaModel) -> Result<Self, EdgeLoadError> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as i32;
        let context_tokens = model.n_ctx_train().clamp(512, MAX_CONTEXT_TOKENS);
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(context_tokens))
            .with_n_batch(BATCH_TOKENS)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let context = model
            .new_context(backend, params)
            .map_err(|e| EdgeLoadError::Engine(format!("llama.cpp context: {e}")))?;
        let vocab = model.vocab();
        let token_text = |token| String::from_utf8_lossy(&vocab.token_to_piece(token, true, None)).into_owned();
        let built_in = model.chat_template(None);
        let jinja = built_in.as_ref().ok().and_then(|t| t.to_string().ok()).and_then(|source| {
            ChatTemplate::compile(&source, token_text(vocab.bos()), token_text(vocab.eos()))
                .map_err(|e| log::warn!("the model's chat template does not compile ({e}); llama.cpp's built-in rendering is used"))
                .ok()
        });
        let template = match (jinja, built_in) {
            (Some(jinja), _) => PromptFormat::Jinja(Box::new(jinja)),
            (None, Ok(built_in)) => PromptFormat::LlamaCpp(built_in),
            (None, Err(_)) => PromptFormat::LlamaCpp(
                LlamaChatTemplate::new("chatml").map_err(|e| EdgeLoadError::Engine(e.to_string()))?,
            ),
        };
        Ok(Self { model, context, template, batch: LlamaBatch::new(BATCH_TOKENS as usize, 1) })
    }

    pub(super) fn serve(mut self, jobs: std_mpsc::Receiver<Job>) {
        for job in jobs {
            if job.events.is_closed() || job.cancel.is_cancelled() {
                continue;
            }
            let outcome = self.generate(&job);
            let last = match outcome {
                Ok(done) => done,
                Err(error) => WorkerEvent::Failed(error),
            };
            // The caller may be gone already; nothing else to tell.
            let _ = job.events.blocking_send(last);
        }
    }

    pub(super) fn prompt_tokens(&self, request: &ChatRequest) -> Result<Vec<LlamaToken>, ModelError> {
        let template = match &self.template {
            PromptFormat::Jinja(template) => {
                let prompt = template.render(&request.messages).map_err(|e| ModelError::InvalidRequest(format!("chat template: {e}")))?;
                // The template writes any BOS itself, as it does for mistral.rs.
                return Ok(self.model.vocab().tokenize(prompt.as_bytes(), false, true));
            }
            PromptFormat::LlamaCpp(template) => template,
        };
        let messages = request
            .messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.as_str().to_owned(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ModelError::InvalidRequest(format!("a message holds a NUL byte: {e}")))?;
        let prompt = self
            .model
            .apply_chat_template(template, &messages, true)
            .map_err(|e| ModelError::Engine(format!("chat template: {e}")))?;
        Ok(self.model.vocab().tokenize(prompt.as_bytes(), true, true))
    }

    /// Clears the context and evaluates the prompt, in batches; logits only for its last token.
    pub(super) fn prefill(&mut self, prompt: &[LlamaToken]) -> Result<(), ModelError> {
        self.context.clear_kv_cache();
        let last = prompt.len().saturating_sub(1);
        for (chunk_index, chunk) in prompt.chunks(BATCH_TOKENS as usize).enumerate() {
            self.batch.clear();
            for (offset, token) in chunk.iter().enumerate() {
                let position = chunk_index * BATCH_TOKENS as usize + offset;
                self.batch
                    .add(*token, position as i32, &[0], position == last)
                    .map_err(|e| ModelError::Engine(e.to_string()))?;
            }
            self.context.decode(&mut self.batch).map_err(|e| ModelError::Engine(format!("llama.cpp decode: {e}")))?;
        }
        Ok(())
    }

    pub(super) fn decode_one(&mut self, token: LlamaToken, position: usize) -> Result<(), ModelError> {
        self.batch.clear();
        self.batch.add(token, position as i32, &[0], true).map_err(|e| ModelError::Engine(e.to_string()))?;
        self.context.decode(&mut self.batch).map_err(|e| ModelError::Engine(format!("llama.cpp decode: {e}")))
    }

    fn sampler(&self, request: &ChatRequest) -> Result<LlamaSampler, ModelError> {
        let mut chain = Vec::new();
        if let Some(schema) = &request.json_schema {
            let grammar = llama_cpp_2::json_schema_to_grammar(&schema.to_string())
                .map_err(|e| ModelError::InvalidRequest(format!("json_schema: {e}")))?;
            let grammar = LlamaSampler::grammar(self.model, &grammar, "root")
                .map_err(|e| ModelError::InvalidRequest(format!("json_schema grammar: {e}")))?;
            chain.push(grammar);
        }
        match request.sampling_temperature() {
            None => chain.push(LlamaSampler::greedy()),
            Some(temperature) => {
                let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
                chain.push(LlamaSampler::temp(temperature));
                chain.push(LlamaSampler::dist(seed));
            }
        }
        Ok(LlamaSampler::chain_simple(chain))
    }

    /// Runs one request to its end; returns the closing event.
    fn generate(&mut self, job: &Job) -> Result<WorkerEvent, ModelError> {
        let request = &job.request;
        let prompt = self.prompt_tokens(request)?;
        let context_tokens = self.context.n_ctx() as usize;
        if prompt.len() + request.max_tokens as usize > context_tokens {
            return Err(ModelError::InvalidRequest(format!(
                "the prompt ({} tokens) and max_tokens ({}) exceed the context of {context_tokens} tokens",
                prompt.len(),
                request.max_tokens
            )));
        }
        let mut sampler = self.sampler(request)?;
        self.prefill(&prompt)?;
        let vocab = self.model.vocab();
        let mut pieces = Utf8Pieces::default();
        let mut stops = StopScanner::new(&request.stop);
        let done = |completion_tokens: usize, reason| WorkerEvent::Done {
            prompt_tokens: prompt.len() as u32,
            completion_tokens: completion_tokens as u32,
            reason,
        };
        for generated in 0..request.max_tokens as usize {
            if job.cancel.is_cancelled() || job.events.is_closed() {
                return Ok(done(generated, FinishReason::Cancelled));
            }
            let token = sampler.sample(&self.context, -1);
            if vocab.is_eog(token) {
                send(job, stops.finish());
                return Ok(done(generated, FinishReason::Stop));
            }
            match stops.push(&pieces.push(&vocab.token_to_piece(token, false, None))) {
                Scanned::Text(text) => send(job, text),
                Scanned::Stopped(text) => {
                    send(job, text);
                    return Ok(done(generated + 1, FinishReason::Stop));
                }
            }
            self.decode_one(token, prompt.len() + generated)?;
        }
        send(job, stops.finish());
        Ok(done(request.max_tokens as usize, FinishReason::Length))
    }
}

fn send(job: &Job, text: String) {
    if !text.is_empty() {
        // A closed channel is noticed before the next token.
        let _ = job.events.blocking_send(WorkerEvent::Delta(text));
    }
}
