//! The ggml edge engine: llama.cpp running the GGUF on the CPU or, when the app allows it and the
//! probe passes, on a Vulkan GPU (the Android GPU path: mistral.rs has no Vulkan backend).
//!
//! One worker thread per model owns the llama.cpp model and context (a context must not be
//! shared between threads) and decodes requests one after another; each request streams its
//! text back over a channel. Dropping the stream, or cancelling it, stops the decoding at the
//! next token.

mod backends;
mod chat_template;
mod probe;
mod text;

use std::num::NonZeroU32;
use std::sync::mpsc as std_mpsc;

use futures::future::BoxFuture;
use futures::StreamExt;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::{mpsc, oneshot};

use self::backends::GpuDevice;
use self::chat_template::ChatTemplate;
use self::probe::{Admission, GpuProbe};
use self::text::{Scanned, StopScanner, Utf8Pieces};
use super::load::Placement;
use super::{EdgeConfig, EdgeLoadError, GpuUse};
use crate::model::{
    CancelHandle, ChatRequest, FinishReason, GenerationClock, ModelError, StreamEvent, TokenCount, TokenStream,
};

/// Context size: the model's own, capped so the KV cache stays phone-sized.
const MAX_CONTEXT_TOKENS: u32 = 4096;
const BATCH_TOKENS: u32 = 512;
/// Greedy steps compared between the GPU and the CPU before the GPU is trusted.
const PROBE_TOKENS: usize = 12;
/// How far below the CPU's best logit the GPU's choice may be: near-ties flip between correct
/// backends (0.03 apart on lavapipe, docs/benchmarks.md); a broken backend's choices are far off.
const NEAR_TIE_LOGITS: f32 = 0.5;
const PROBE_PROMPT: &str = "List the first five prime numbers, separated by commas.";

pub(super) struct GgmlEngine {
    jobs: std_mpsc::Sender<Job>,
}

struct Job {
    request: ChatRequest,
    events: mpsc::Sender<WorkerEvent>,
    cancel: CancelHandle,
}

/// What the worker sends back for one request.
enum WorkerEvent {
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
                let (model, placement) = match place_model(backend, &config) {
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
            let cancel = CancelHandle::default();
            self.jobs
                .send(Job { request, events, cancel: cancel.clone() })
                .map_err(|_| ModelError::Engine("the ggml worker has stopped".into()))?;
            let generation = Generation { events: Some(receiver), cancel: cancel.clone(), clock, finished: None };
            Ok(TokenStream::new(futures::stream::unfold(generation, next_event).boxed(), cancel))
        })
    }
}

/// The caller's side of one request.
struct Generation {
    /// Dropping the receiver is what tells the worker to stop.
    events: Option<mpsc::Receiver<WorkerEvent>>,
    cancel: CancelHandle,
    clock: GenerationClock,
    finished: Option<crate::model::Usage>,
}

async fn next_event(mut generation: Generation) -> Option<(Result<StreamEvent, ModelError>, Generation)> {
    loop {
        if let Some(usage) = generation.finished.take() {
            generation.events = None;
            return Some((Ok(StreamEvent::Finished(usage)), generation));
        }
        let events = generation.events.as_mut()?;
        let event = tokio::select! {
            biased;
            _ = generation.cancel.token().cancelled() => {
                let deltas = generation.clock.deltas();
                generation.finished = Some(generation.clock.usage(0, deltas, TokenCount::Estimated, FinishReason::Cancelled));
                continue;
            }
            event = events.recv() => event,
        };
        let item = match event {
            Some(WorkerEvent::Delta(text)) => {
                generation.clock.on_delta();
                Ok(StreamEvent::Delta(text))
            }
            Some(WorkerEvent::Done { prompt_tokens, completion_tokens, reason }) => {
                generation.finished =
                    Some(generation.clock.usage(prompt_tokens, completion_tokens, TokenCount::Reported, reason));
                continue;
            }
            Some(WorkerEvent::Failed(error)) => Err(error),
            None => Err(ModelError::Engine("the ggml worker stopped during the request".into())),
        };
        if item.is_err() {
            generation.events = None;
        }
        return Some((item, generation));
    }
}

fn model_params_on_cpu() -> Result<LlamaModelParams, EdgeLoadError> {
    // An explicit empty device list: a loaded Vulkan backend must not take layers it was not given.
    LlamaModelParams::default().with_n_gpu_layers(0).with_devices(&[]).map_err(|e| EdgeLoadError::Engine(e.to_string()))
}

fn load_model(backend: &LlamaBackend, config: &EdgeConfig, params: &LlamaModelParams) -> Result<LlamaModel, EdgeLoadError> {
    LlamaModel::load_from_file(backend, &config.model_path, params)
        .map_err(|e| EdgeLoadError::Engine(format!("llama.cpp: {e}")))
}

/// Loads the model where the configuration and the probe allow: a Vulkan GPU, else the CPU.
fn place_model(backend: &LlamaBackend, config: &EdgeConfig) -> Result<(LlamaModel, Placement), EdgeLoadError> {
    let on_cpu = |why: Option<String>| -> Result<(LlamaModel, Placement), EdgeLoadError> {
        let model = load_model(backend, config, &model_params_on_cpu()?)?;
        Ok((model, Placement { device: "CPU".into(), gpu_unavailable: why }))
    };
    if config.gpu == GpuUse::Off {
        return on_cpu(None);
    }
    let Some(state_dir) = &config.gpu_state_dir else {
        return on_cpu(Some("no state directory to record the GPU probe in".into()));
    };
    let probe = GpuProbe::new(state_dir, &config.gpu_deny_list);
    let in_progress = match probe.begin() {
        Ok(in_progress) => in_progress,
        Err(why) => return on_cpu(Some(why)),
    };
    // From here until `finish`/`abandon`, a crash in the driver is remembered by the marker.
    let device = match backends::vulkan_devices() {
        Ok(devices) => match devices.into_iter().next() {
            Some(device) => device,
            None => {
                probe.abandon(in_progress);
                return on_cpu(Some(
                    "no Vulkan GPU found (ggml skips CPU-type Vulkan devices unless GGML_VK_VISIBLE_DEVICES names them)".into(),
                ));
            }
        },
        Err(why) => {
            probe.abandon(in_progress);
            return on_cpu(Some(why));
        }
    };
    let model_name = config.model_path.file_name().map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    let verified = match probe.admit(&device, &model_name) {
        Admission::Use { verified } => verified,
        Admission::Refuse(why) => {
            probe.abandon(in_progress);
            return on_cpu(Some(why));
        }
    };
    let gpu_params = LlamaModelParams::default()
        .with_n_gpu_layers(u32::MAX)
        .with_devices(&[device.index])
        .map_err(|e| EdgeLoadError::Engine(e.to_string()))?;
    let gpu_model = match load_model(backend, config, &gpu_params) {
        Ok(model) => model,
        Err(e) => {
            let why = format!("{} could not load the model: {e}", device.name);
            probe.finish(in_progress, &device, &model_name, Err(why.clone())).map_err(EdgeLoadError::Engine)?;
            return on_cpu(Some(why));
        }
    };
    let gpu_placement = Placement { device: describe(&device), gpu_unavailable: None };
    if verified {
        probe.abandon(in_progress);
        return Ok((gpu_model, gpu_placement));
    }
    let cpu_model = load_model(backend, config, &model_params_on_cpu()?)?;
    let outcome = compare_greedy_output(backend, &gpu_model, &cpu_model);
    probe.finish(in_progress, &device, &model_name, outcome.clone()).map_err(EdgeLoadError::Engine)?;
    match outcome {
        Ok(()) => Ok((gpu_model, gpu_placement)),
        Err(why) => Ok((cpu_model, Placement { device: "CPU".into(), gpu_unavailable: Some(why) })),
    }
}

fn describe(device: &GpuDevice) -> String {
    format!("{} ({})", device.name, device.description)
}

/// The probe's last step: the GPU and the CPU decode the same prompt in lockstep, both fed the
/// CPU's greedy token, and at every step the GPU's choice must be the CPU's or a near-tie on the
/// CPU (within [`NEAR_TIE_LOGITS`]): two correct backends round differently, so a small model's
/// near-ties may flip, while a broken driver's logits are far off.
fn compare_greedy_output(backend: &LlamaBackend, gpu: &LlamaModel, cpu: &LlamaModel) -> Result<(), String> {
    let request = ChatRequest::new(vec![crate::model::Message::user(PROBE_PROMPT)]);
    let mut on_gpu = Worker::new(backend, gpu).map_err(|e| e.to_string())?;
    let mut on_cpu = Worker::new(backend, cpu).map_err(|e| e.to_string())?;
    let prompt = on_cpu.prompt_tokens(&request).map_err(|e| e.to_string())?;
    on_gpu.prefill(&prompt).map_err(|e| e.to_string())?;
    on_cpu.prefill(&prompt).map_err(|e| e.to_string())?;
    let argmax = |logits: &[f32]| (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap_or(0);
    let (mut identical, mut largest_deviation, mut steps) = (0, 0.0f32, 0);
    for step in 0..PROBE_TOKENS {
        steps += 1;
        let (gpu_logits, cpu_logits) = (on_gpu.context.get_logits(), on_cpu.context.get_logits());
        let (gpu_best, cpu_best) = (argmax(gpu_logits), argmax(cpu_logits));
        let shortfall = cpu_logits[cpu_best] - cpu_logits[gpu_best];
        identical += usize::from(gpu_best == cpu_best);
        largest_deviation = largest_deviation.max((gpu_logits[cpu_best] - cpu_logits[cpu_best]).abs());
        if shortfall > NEAR_TIE_LOGITS {
            let piece = |token: usize| {
                String::from_utf8_lossy(&cpu.vocab().token_to_piece(LlamaToken::new(token as i32), false, None)).into_owned()
            };
            return Err(format!(
                "at token {step} the GPU chose {:?}, {shortfall:.2} logits below the CPU's {:?}",
                piece(gpu_best),
                piece(cpu_best)
            ));
        }
        let token = LlamaToken::new(cpu_best as i32);
        if cpu.vocab().is_eog(token) {
            break;
        }
        let position = prompt.len() + step;
        on_gpu.decode_one(token, position).map_err(|e| e.to_string())?;
        on_cpu.decode_one(token, position).map_err(|e| e.to_string())?;
    }
    log::info!(
        "GPU probe passed: the same greedy choice as the CPU at {identical} of {steps} steps, the rest near-ties; largest logit difference {largest_deviation:.2}"
    );
    Ok(())
}

/// A model's decoding state on the worker thread.
struct Worker<'model> {
    model: &'model LlamaModel,
    context: LlamaContext<'model>,
    /// The GGUF's Jinja template; `None` when it has none minijinja compiles (then llama.cpp's
    /// built-in rendering of known shapes, ChatML by default).
    template: Option<ChatTemplate>,
    batch: LlamaBatch<'static>,
}

impl<'model> Worker<'model> {
    fn new(backend: &LlamaBackend, model: &'model LlamaModel) -> Result<Self, EdgeLoadError> {
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
        let template = model.chat_template(None).ok().and_then(|t| t.to_string().ok()).and_then(|source| {
            ChatTemplate::compile(&source, token_text(vocab.bos()), token_text(vocab.eos()))
                .map_err(|e| log::warn!("the model's chat template does not compile ({e}); llama.cpp's built-in rendering is used"))
                .ok()
        });
        Ok(Self { model, context, template, batch: LlamaBatch::new(BATCH_TOKENS as usize, 1) })
    }

    fn serve(mut self, jobs: std_mpsc::Receiver<Job>) {
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

    fn prompt_tokens(&self, request: &ChatRequest) -> Result<Vec<LlamaToken>, ModelError> {
        if let Some(template) = &self.template {
            let prompt = template.render(&request.messages).map_err(|e| ModelError::InvalidRequest(format!("chat template: {e}")))?;
            // The template writes any BOS itself, as it does for mistral.rs.
            return Ok(self.model.vocab().tokenize(prompt.as_bytes(), false, true));
        }
        let messages = request
            .messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.as_str().to_owned(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ModelError::InvalidRequest(format!("a message holds a NUL byte: {e}")))?;
        let template = match self.model.chat_template(None) {
            Ok(template) => template,
            Err(_) => LlamaChatTemplate::new("chatml").map_err(|e| ModelError::Engine(e.to_string()))?,
        };
        let prompt = self
            .model
            .apply_chat_template(&template, &messages, true)
            .map_err(|e| ModelError::Engine(format!("chat template: {e}")))?;
        Ok(self.model.vocab().tokenize(prompt.as_bytes(), true, true))
    }

    /// Clears the context and evaluates the prompt, in batches; logits only for its last token.
    fn prefill(&mut self, prompt: &[LlamaToken]) -> Result<(), ModelError> {
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

    fn decode_one(&mut self, token: LlamaToken, position: usize) -> Result<(), ModelError> {
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
