//! A deliberately misbehaving OpenAI-compatible HTTP server for fault tests: each accepted request
//! is answered by a script chosen from the attempt number. It speaks just enough HTTP/1.1 (one
//! request per connection, `Connection: close`) and records what it received.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the server answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A status with a small JSON error body and extra headers.
    Status(u16, Vec<(&'static str, String)>),
    /// A whole (non-streamed) JSON body with status 200.
    Json(String),
    /// An event stream: each line sent as `line\n\n` after `delay`, then `end`.
    Events { lines: Vec<String>, delay: Duration, end: End },
    /// Accept the connection, read the request, never answer.
    Hang,
}

#[derive(Clone, Copy, Debug)]
pub enum End {
    /// Close the connection (no `[DONE]` unless it is among the lines).
    Close,
    /// Keep the connection open and silent.
    Hang,
}

/// A chunk in the OpenAI stream format carrying `text`.
pub fn delta(text: &str) -> String {
    format!("data: {}", serde_json::json!({"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]}))
}

/// The closing lines of a well-formed stream: finish reason, usage, `[DONE]`.
pub fn stream_end(prompt_tokens: u32, completion_tokens: u32) -> Vec<String> {
    vec![
        format!("data: {}", serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})),
        format!("data: {}", serde_json::json!({"choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}})),
        "data: [DONE]".to_string(),
    ]
}

pub struct FaultServer {
    pub base_url: String,
    attempts: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    client_closed: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultServer {
    /// Starts on 127.0.0.1 with `script(attempt)` (attempt counts from 1).
    pub async fn start(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let attempts = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let client_closed = Arc::new(AtomicBool::new(false));
        let script = Arc::new(script);
        let (a, r, c) = (attempts.clone(), requests.clone(), client_closed.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                let attempt = a.fetch_add(1, Ordering::SeqCst) + 1;
                let reply = script(attempt);
                let (r, c) = (r.clone(), c.clone());
                tokio::spawn(async move { serve(socket, reply, r, c).await });
            }
        });
        Self { base_url, attempts, requests, client_closed, task }
    }

    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    /// Raw requests received (head and body).
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Whether a client closed its connection while the server was still streaming.
    pub fn client_closed(&self) -> bool {
        self.client_closed.load(Ordering::SeqCst)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(socket: &mut TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
                .unwrap_or(0);
            if data.len() >= head_end + 4 + length {
                return Some(text);
            }
        }
    }
}

async fn serve(mut socket: TcpStream, reply: Reply, requests: Arc<Mutex<Vec<String>>>, client_closed: Arc<AtomicBool>) {
    let Some(request) = read_request(&mut socket).await else { return };
    requests.lock().unwrap().push(request);
    match reply {
        Reply::Status(status, headers) => {
            let body = format!("{{\"error\":{{\"message\":\"status {status}\"}}}}");
            let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
            let head = format!("HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n", body.len());
            let _ = socket.write_all(format!("{head}{body}").as_bytes()).await;
        }
        Reply::Json(body) => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = socket.write_all(format!("{head}{body}").as_bytes()).await;
        }
        Reply::Events { lines, delay, end } => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for line in lines {
                tokio::time::sleep(delay).await;
                if socket.write_all(format!("{line}\n\n").as_bytes()).await.is_err() || socket.flush().await.is_err() {
                    client_closed.store(true, Ordering::SeqCst);
                    return;
                }
            }
            if let End::Hang = end {
                // Wait for the client to go away, and note it.
                let mut buf = [0u8; 16];
                if matches!(socket.read(&mut buf).await, Ok(0) | Err(_)) {
                    client_closed.store(true, Ordering::SeqCst);
                }
            }
        }
        Reply::Hang => {
            let mut buf = [0u8; 16];
            let _ = socket.read(&mut buf).await;
        }
    }
}
