//! The call record: every model call of a benchmark run, with its full request, its full response
//! text, usage and measured timings, one JSON line each. Greedy calls whose request was seen
//! before (same side, model and request) are served from the record instead of the model, so
//! strategies share the calls they have in common and a rerun pays only for what is new. The
//! record is also the audit trail: any score can be checked against the text that produced it.
//! A greedy call that ended on its own (not at its cap) is the same under any cap at least as
//! long as it, so a change of token cap re-runs only the calls the old cap cut.
//! The [`Timeline`] of a result says when each of its calls ran, for the latency model.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::future::BoxFuture;
use futures::StreamExt;
use hybridflow_core::model::{CancelHandle, ChatModel, ChatRequest, FinishReason, Message, ModelError, Side, StreamEvent, TokenCount, TokenStream, Usage};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallRecord {
    /// sha256 of the side, the model and the request.
    pub key: String,
    pub side: Side,
    pub model: String,
    pub messages: Vec<Message>,
    pub max_tokens: u32,
    pub stop: Vec<String>,
    pub json_schema: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub token_logprobs_requested: bool,
    pub text: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub token_count: TokenCount,
    pub finish_reason: FinishReason,
    pub time_to_first_token_ms: Option<f64>,
    pub total_ms: f64,
    pub decode_tokens_per_second: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_logprobs: Vec<f32>,
}

#[cfg(test)]
impl CallRecord {
    /// A recorded greedy call with placeholder contents, for tests to set what they read with
    /// struct update syntax.
    pub fn for_test(side: Side) -> Self {
        Self {
            key: String::new(),
            side,
            model: "m".into(),
            messages: Vec::new(),
            max_tokens: 8,
            stop: Vec::new(),
            json_schema: None,
            token_logprobs_requested: false,
            text: String::new(),
            prompt_tokens: 1,
            completion_tokens: 1,
            token_count: TokenCount::Reported,
            finish_reason: FinishReason::Stop,
            time_to_first_token_ms: None,
            total_ms: 1.0,
            decode_tokens_per_second: 1.0,
            token_logprobs: Vec::new(),
        }
    }
}

impl CallRecord {
    fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            token_count: self.token_count,
            time_to_first_token: self.time_to_first_token_ms.map(|ms| Duration::from_secs_f64(ms / 1e3)),
            total_time: Duration::from_secs_f64(self.total_ms / 1e3),
            decode_tokens_per_second: self.decode_tokens_per_second,
            finish_reason: self.finish_reason,
            token_logprobs: self.token_logprobs.clone(),
        }
    }
}

/// How much faster than recorded a replayed call runs.
const REPLAY_SPEEDUP: f64 = 100.0;

fn sha256_hex(value: &serde_json::Value) -> String {
    Sha256::digest(value.to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// What identifies a request apart from its cap. The log-probability flag is named only when set,
/// so the keys of calls recorded before it existed still match.
fn capless_request(side: Side, model: &str, messages: &[Message], stop: &[String], json_schema: Option<&serde_json::Value>, token_logprobs: bool) -> serde_json::Value {
    let mut request = serde_json::json!({ "side": side, "model": model, "messages": messages, "stop": stop, "json_schema": json_schema });
    if token_logprobs {
        request["token_logprobs"] = true.into();
    }
    request
}

/// The key of a call: only greedy calls have one (a sampled call is not repeatable).
fn call_key(side: Side, model: &str, request: &ChatRequest) -> Option<String> {
    if request.sampling_temperature().is_some() {
        return None;
    }
    let mut canonical = capless_request(side, model, &request.messages, &request.stop, request.json_schema.as_ref(), request.token_logprobs);
    canonical["max_tokens"] = request.max_tokens.into();
    Some(sha256_hex(&canonical))
}

/// The key of a request whatever its token cap: the calls that share it differ only in the cap.
fn capless_key(side: Side, model: &str, messages: &[Message], stop: &[String], json_schema: Option<&serde_json::Value>, token_logprobs: bool) -> String {
    sha256_hex(&capless_request(side, model, messages, stop, json_schema, token_logprobs))
}

/// The record file, loaded, and appended to as calls complete.
pub struct CallLog {
    known: Mutex<Known>,
    file: Mutex<std::fs::File>,
}

#[derive(Default)]
struct Known {
    by_key: HashMap<String, CallRecord>,
    /// Keys of the recorded calls by their request without its cap.
    by_capless_key: HashMap<String, Vec<String>>,
}

impl Known {
    fn insert(&mut self, record: CallRecord) {
        let capless = capless_key(record.side, &record.model, &record.messages, &record.stop, record.json_schema.as_ref(), record.token_logprobs_requested);
        let keys = self.by_capless_key.entry(capless).or_default();
        if !keys.contains(&record.key) {
            keys.push(record.key.clone());
        }
        self.by_key.insert(record.key.clone(), record);
    }
}

impl CallLog {
    pub fn open(path: &Path) -> Result<Arc<Self>> {
        let mut known = Known::default();
        if let Ok(file) = std::fs::File::open(path) {
            for line in std::io::BufReader::new(file).lines() {
                // A line cut by a killed run is skipped: the call is simply made again.
                if let Ok(record) = serde_json::from_str::<CallRecord>(&line?) {
                    known.insert(record);
                }
            }
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Arc::new(Self { known: Mutex::new(known), file: Mutex::new(file) }))
    }

    fn append(&self, record: CallRecord) {
        if let Ok(line) = serde_json::to_string(&record) {
            let mut file = self.file.lock().unwrap();
            if let Err(e) = writeln!(file, "{line}").and_then(|()| file.flush()) {
                eprintln!("cannot append to the call record: {e}");
            }
        }
        self.known.lock().unwrap().insert(record);
    }

    /// The recorded call with this key.
    pub fn get(&self, key: &str) -> Option<CallRecord> {
        self.known.lock().unwrap().by_key.get(key).cloned()
    }

    /// The recorded call that answers this greedy request: the same request, or the same request
    /// under another cap whose completion ended on its own within this request's cap.
    fn replay_of(&self, key: &str, side: Side, model: &str, request: &ChatRequest) -> Option<CallRecord> {
        let known = self.known.lock().unwrap();
        if let Some(record) = known.by_key.get(key) {
            return Some(record.clone());
        }
        let capless = capless_key(side, model, &request.messages, &request.stop, request.json_schema.as_ref(), request.token_logprobs);
        known.by_capless_key.get(&capless)?.iter().filter_map(|k| known.by_key.get(k)).find(|r| r.finish_reason == FinishReason::Stop && r.completion_tokens <= request.max_tokens).cloned()
    }
}

/// One call of the result being measured: which, on which side, and when it ran (seconds from
/// the start of the question; a replayed call takes no time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallSpan {
    pub key: String,
    pub side: Side,
    pub start_s: f64,
    pub end_s: f64,
    pub replayed: bool,
}

/// The calls of the result being measured, as they start and end.
#[derive(Default)]
pub struct Timeline {
    epoch: Mutex<Option<Instant>>,
    spans: Mutex<Vec<CallSpan>>,
}

impl Timeline {
    /// Starts a new question: time 0 is now, no calls yet.
    pub fn restart(&self) {
        *self.epoch.lock().unwrap() = Some(Instant::now());
        self.spans.lock().unwrap().clear();
    }

    /// The calls so far, in the order they started.
    pub fn take(&self) -> Vec<CallSpan> {
        std::mem::take(&mut *self.spans.lock().unwrap())
    }

    fn now(&self) -> f64 {
        self.epoch.lock().unwrap().map_or(0.0, |epoch| epoch.elapsed().as_secs_f64())
    }

    fn begin(&self, key: &str, side: Side, replayed: bool) -> usize {
        let now = self.now();
        let mut spans = self.spans.lock().unwrap();
        spans.push(CallSpan { key: key.to_owned(), side, start_s: now, end_s: now, replayed });
        spans.len() - 1
    }

    fn end(&self, index: usize) {
        let now = self.now();
        if let Some(span) = self.spans.lock().unwrap().get_mut(index) {
            span.end_s = now;
        }
    }
}

/// Ends a call's span when its stream finishes, fails or is dropped, whichever comes first.
struct SpanEnd {
    timeline: Arc<Timeline>,
    index: Option<usize>,
}

impl SpanEnd {
    fn end(&mut self) {
        if let Some(index) = self.index.take() {
            self.timeline.end(index);
        }
    }
}

impl Drop for SpanEnd {
    fn drop(&mut self) {
        self.end();
    }
}

/// A model whose greedy calls go through the record.
pub struct Recorded {
    inner: Arc<dyn ChatModel>,
    log: Arc<CallLog>,
    timeline: Arc<Timeline>,
}

impl Recorded {
    pub fn new(inner: Arc<dyn ChatModel>, log: Arc<CallLog>, timeline: Arc<Timeline>) -> Self {
        Self { inner, log, timeline }
    }
}

impl ChatModel for Recorded {
    fn side(&self) -> Side {
        self.inner.side()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn cost(&self, usage: &Usage) -> f64 {
        self.inner.cost(usage)
    }

    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<TokenStream, ModelError>> {
        Box::pin(async move {
            let key = call_key(self.side(), self.name(), &request);
            if let Some(key) = &key {
                if let Some(record) = self.log.replay_of(key, self.side(), self.name(), &request) {
                    // Replayed in a hundredth of its recorded time: fast, and the timeline keeps
                    // which calls overlapped and which released which (the latency model needs it).
                    // The span names the recorded call, which may have been made under another cap.
                    let index = self.timeline.begin(&record.key, self.side(), true);
                    tokio::time::sleep(Duration::from_secs_f64(record.total_ms / 1e3 / REPLAY_SPEEDUP)).await;
                    self.timeline.end(index);
                    let events = [Ok(StreamEvent::Delta(record.text.clone())), Ok(StreamEvent::Finished(record.usage()))];
                    return Ok(TokenStream::new(futures::stream::iter(events).boxed(), CancelHandle::default()));
                }
            }
            let mut span = SpanEnd { timeline: self.timeline.clone(), index: key.as_ref().map(|k| self.timeline.begin(k, self.side(), false)) };
            let inner = self.inner.stream(request.clone()).await?;
            let cancel = inner.cancel_handle();
            let (side, model, log) = (self.side(), self.name().to_owned(), self.log.clone());
            let mut text = String::new();
            let recording = inner.map(move |event| {
                if matches!(event, Ok(StreamEvent::Finished(_)) | Err(_)) {
                    span.end();
                }
                match &event {
                    Ok(StreamEvent::Delta(delta)) => text.push_str(delta),
                    // Only completed calls are recorded: a failed or cancelled one is made again.
                    Ok(StreamEvent::Finished(usage)) if usage.finish_reason != FinishReason::Cancelled => {
                        if let Some(key) = &key {
                            log.append(CallRecord {
                                key: key.clone(),
                                side,
                                model: model.clone(),
                                messages: request.messages.clone(),
                                max_tokens: request.max_tokens,
                                stop: request.stop.clone(),
                                json_schema: request.json_schema.clone(),
                                token_logprobs_requested: request.token_logprobs,
                                text: std::mem::take(&mut text),
                                prompt_tokens: usage.prompt_tokens,
                                completion_tokens: usage.completion_tokens,
                                token_count: usage.token_count,
                                finish_reason: usage.finish_reason,
                                time_to_first_token_ms: usage.time_to_first_token.map(|t| t.as_secs_f64() * 1e3),
                                total_ms: usage.total_time.as_secs_f64() * 1e3,
                                decode_tokens_per_second: usage.decode_tokens_per_second,
                                token_logprobs: usage.token_logprobs.clone(),
                            });
                        }
                    }
                    _ => {}
                }
                event
            });
            Ok(TokenStream::new(recording.boxed(), cancel))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model that counts its calls and answers with the request's last message reversed, in
    /// three tokens, or stops at the request's cap when it is shorter.
    struct Counting(Mutex<u32>);

    impl ChatModel for Counting {
        fn side(&self) -> Side {
            Side::Edge
        }
        fn name(&self) -> &str {
            "counting"
        }
        fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<TokenStream, ModelError>> {
            *self.0.lock().unwrap() += 1;
            let text: String = request.messages.last().unwrap().content.chars().rev().collect();
            let (completion_tokens, finish_reason) = if request.max_tokens < 3 { (request.max_tokens, FinishReason::Length) } else { (3, FinishReason::Stop) };
            let token_logprobs = if request.token_logprobs { vec![-0.5; completion_tokens as usize] } else { Vec::new() };
            let usage = Usage { prompt_tokens: 7, completion_tokens, token_count: TokenCount::Reported, time_to_first_token: Some(Duration::from_millis(20)), total_time: Duration::from_millis(50), decode_tokens_per_second: 66.0, finish_reason, token_logprobs };
            Box::pin(async move { Ok(TokenStream::new(futures::stream::iter([Ok(StreamEvent::Delta(text)), Ok(StreamEvent::Finished(usage))]).boxed(), CancelHandle::default())) })
        }
    }

    #[tokio::test]
    async fn greedy_calls_are_made_once_and_replayed_across_runs() {
        let path = std::env::temp_dir().join(format!("hybridflow-calls-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let model = Arc::new(Counting(Mutex::new(0)));
        async fn ask(recorded: &Recorded, text: &str, temperature: Option<f32>) -> hybridflow_core::model::Completion {
            let mut request = ChatRequest::new(vec![Message::user(text)]);
            request.temperature = temperature;
            recorded.stream(request).await.unwrap().collect_text().await.unwrap()
        }
        let timeline = Arc::new(Timeline::default());
        timeline.restart();
        let first = Recorded::new(model.clone(), CallLog::open(&path).unwrap(), timeline.clone());
        let made = ask(&first, "abc", None).await;
        assert_eq!(made.text, "cba");
        assert_eq!(ask(&first, "abc", None).await, made, "replayed with the same text and usage");
        ask(&first, "abc", Some(0.7)).await;
        assert_eq!(*model.0.lock().unwrap(), 2, "the greedy repeat was replayed, the sampled call made");
        // A new run reads the record from disk.
        let second = Recorded::new(model.clone(), CallLog::open(&path).unwrap(), timeline.clone());
        assert_eq!(ask(&second, "abc", None).await.usage.completion_tokens, 3);
        ask(&second, "abcd", None).await;
        assert_eq!(*model.0.lock().unwrap(), 3, "only the new request reached the model");
        let spans = timeline.take();
        assert_eq!(spans.iter().map(|s| s.replayed).collect::<Vec<_>>(), vec![false, true, true, false], "greedy calls are on the timeline");
        assert!(spans.windows(2).all(|w| w[0].start_s <= w[1].start_s && w[0].start_s <= w[0].end_s));
        let line: CallRecord = serde_json::from_str(std::fs::read_to_string(&path).unwrap().lines().next().unwrap()).unwrap();
        assert_eq!((line.text.as_str(), line.messages[0].content.as_str(), line.total_ms.round()), ("cba", "abc", 50.0), "full request and response recorded");
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test]
    async fn a_call_that_ended_on_its_own_is_replayed_under_any_cap_it_fits() {
        let path = std::env::temp_dir().join(format!("hybridflow-calls-caps-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let model = Arc::new(Counting(Mutex::new(0)));
        let timeline = Arc::new(Timeline::default());
        timeline.restart();
        let recorded = Recorded::new(model.clone(), CallLog::open(&path).unwrap(), timeline.clone());
        let ask = |text: &'static str, max_tokens: u32| {
            let recorded = &recorded;
            async move { recorded.stream(ChatRequest::new(vec![Message::user(text)]).with_max_tokens(max_tokens)).await.unwrap().collect_text().await.unwrap() }
        };
        assert_eq!(ask("abc", 384).await.usage.finish_reason, FinishReason::Stop);
        assert_eq!(ask("abc", 1024).await.text, "cba");
        assert_eq!(ask("abc", 3).await.usage.completion_tokens, 3);
        assert_eq!(*model.0.lock().unwrap(), 1, "a completion that stopped within the cap is the same under a larger or smaller one");
        assert_eq!(ask("abc", 2).await.usage.finish_reason, FinishReason::Length, "a cap below its length is a new call");
        assert_eq!(ask("xyz", 2).await.usage.finish_reason, FinishReason::Length);
        assert_eq!(ask("xyz", 1024).await.usage.finish_reason, FinishReason::Stop, "a completion cut at its cap is made again under a larger one");
        assert_eq!(*model.0.lock().unwrap(), 4);
        let spans = timeline.take();
        assert_eq!(spans[1].key, spans[0].key, "a replay names the recorded call");
        assert!(spans[1].replayed && !spans[3].replayed && !spans[5].replayed);
        std::fs::remove_file(&path).unwrap();
    }
}
