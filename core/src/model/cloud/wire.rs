//! The OpenAI chat-completions wire format: request body, response and stream chunks, and a
//! server-sent-events line decoder. Pure functions over bytes, so the fuzzer and unit tests reach
//! every branch without a network.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::model::{ChatRequest, FinishReason};

pub fn request_body(model: &str, request: &ChatRequest, stream: bool) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| json!({"role": m.role.as_str(), "content": m.content}))
        .collect();
    let mut body = json!({
        "model": model,
        "messages": messages,
        "max_tokens": request.max_tokens,
        "temperature": request.sampling_temperature().unwrap_or(0.0),
        "stream": stream,
    });
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    if !request.stop.is_empty() {
        body["stop"] = json!(request.stop);
    }
    if let Some(schema) = &request.json_schema {
        body["response_format"] = json!({
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": schema, "strict": true}
        });
    }
    body
}

#[derive(Debug, Deserialize)]
pub struct WireUsage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    #[serde(default)]
    delta: Option<WireMessage>,
    #[serde(default)]
    message: Option<WireMessage>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireResponse {
    #[serde(default)]
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
    error: Option<Value>,
}

/// What one JSON object of the API says (a stream chunk or a whole response).
#[derive(Debug, Default)]
pub struct Parsed {
    pub text: Option<String>,
    pub finish_reason: Option<FinishReason>,
    pub usage: Option<WireUsage>,
}

pub fn finish_reason(wire: &str) -> FinishReason {
    match wire {
        "length" => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}

/// Parses a chunk (`delta`) or a full response (`message`); an `error` object is an error.
pub fn parse_json(bytes: &[u8]) -> Result<Parsed, String> {
    let response: WireResponse = serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    if let Some(error) = response.error {
        let message = error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned);
        return Err(format!("server error in response: {message}"));
    }
    let choice = response.choices.into_iter().next();
    let (text, finish) = match choice {
        Some(c) => (c.delta.or(c.message).and_then(|m| m.content), c.finish_reason),
        None => (None, None),
    };
    Ok(Parsed { text, finish_reason: finish.as_deref().map(finish_reason), usage: response.usage })
}

/// One meaningful line of an event stream.
#[derive(Debug, PartialEq, Eq)]
pub enum SseLine {
    Data(Vec<u8>),
    Done,
}

/// Splits a byte stream into SSE lines, with a bound on the length of one line.
#[derive(Debug, Default)]
pub struct SseDecoder {
    pending: Vec<u8>,
}

impl SseDecoder {
    /// Feeds bytes; returns the complete lines' data. Comments, `event:`, `id:` and `retry:` fields
    /// and blank lines are skipped; anything else is malformed.
    pub fn push(&mut self, bytes: &[u8], max_line: usize) -> Result<Vec<SseLine>, String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if let Some(parsed) = Self::parse_line(&line[..line.len() - 1])? {
                lines.push(parsed);
            }
        }
        if self.pending.len() > max_line {
            return Err(format!("an event-stream line exceeds {max_line} bytes"));
        }
        Ok(lines)
    }

    /// The stream ended: a final line without a newline still counts.
    pub fn finish(&mut self) -> Result<Option<SseLine>, String> {
        let rest = std::mem::take(&mut self.pending);
        Self::parse_line(&rest)
    }

    fn parse_line(line: &[u8]) -> Result<Option<SseLine>, String> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() || line.starts_with(b":") {
            return Ok(None);
        }
        if let Some(data) = line.strip_prefix(b"data:") {
            let data = data.strip_prefix(b" ").unwrap_or(data);
            return Ok(Some(if data == b"[DONE]" { SseLine::Done } else { SseLine::Data(data.to_vec()) }));
        }
        if [&b"event:"[..], b"id:", b"retry:"].iter().any(|field| line.starts_with(field)) {
            return Ok(None);
        }
        Err(format!("malformed event-stream line: {:?}", String::from_utf8_lossy(&line[..line.len().min(80)])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Message;

    #[test]
    fn body_carries_every_option() {
        let request = ChatRequest::new(vec![Message::system("s"), Message::user("u")])
            .with_max_tokens(7)
            .with_stop(["\n\n"])
            .with_json_schema(json!({"type": "object"}));
        let body = request_body("m", &request, true);
        assert_eq!(body["messages"][1], json!({"role": "user", "content": "u"}));
        assert_eq!(body["max_tokens"], 7);
        assert_eq!(body["temperature"], 0.0);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["stop"], json!(["\n\n"]));
        assert_eq!(body["response_format"]["json_schema"]["schema"], json!({"type": "object"}));
        assert!(request_body("m", &ChatRequest::new(vec![Message::user("u")]), false).get("stream_options").is_none());
    }

    #[test]
    fn decoder_handles_split_lines_crlf_comments_and_done() {
        let mut decoder = SseDecoder::default();
        assert_eq!(decoder.push(b": keep-alive\r\nevent: x\r\nda", 100).unwrap(), vec![]);
        assert_eq!(decoder.push(b"ta: {\"a\":1}\r\n\r\ndata: [DONE]\n", 100).unwrap(),
            vec![SseLine::Data(b"{\"a\":1}".to_vec()), SseLine::Done]);
        assert!(decoder.push(b"garbage line\n", 100).is_err());
        let mut decoder = SseDecoder::default();
        assert!(decoder.push(&[b'x'; 101], 100).is_err());
        let mut decoder = SseDecoder::default();
        decoder.push(b"data: [DONE]", 100).unwrap();
        assert_eq!(decoder.finish().unwrap(), Some(SseLine::Done));
    }

    #[test]
    fn parses_chunks_responses_and_error_objects() {
        let chunk = parse_json(br#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}"#).unwrap();
        assert_eq!(chunk.text.as_deref(), Some("Hi"));
        let last = parse_json(br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#).unwrap();
        assert_eq!(last.usage.unwrap().completion_tokens, 2);
        let full = parse_json(br#"{"choices":[{"message":{"content":"ok"},"finish_reason":"length"}]}"#).unwrap();
        assert_eq!((full.text.as_deref(), full.finish_reason), (Some("ok"), Some(FinishReason::Length)));
        assert!(parse_json(br#"{"error":{"message":"overloaded"}}"#).unwrap_err().contains("overloaded"));
        assert!(parse_json(b"{not json").is_err());
    }
}
