//! The cloud backend against a real OpenAI-compatible server: llama.cpp's llama-server serving
//! Qwen2.5-Coder-0.5B-Instruct on 127.0.0.1.

use futures::StreamExt;
use hybridflow_core::model::{ChatModel, ChatRequest, FinishReason, Message, StreamEvent, TokenCount};
use hybridflow_e2e::{cancel_after, test_cloud};

fn ask(question: &str) -> ChatRequest {
    ChatRequest::new(vec![Message::user(question)])
}

#[tokio::test]
async fn streamed_answer_with_server_usage() {
    let cloud = test_cloud();
    let mut stream = cloud.stream(ask("What is the capital of France, and which river flows through it? One sentence.").with_max_tokens(40)).await.unwrap();
    let mut deltas = Vec::new();
    let mut usage = None;
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            StreamEvent::Delta(text) => deltas.push(text),
            StreamEvent::Finished(u) => usage = Some(u),
        }
    }
    let usage = usage.unwrap();
    assert!(deltas.len() > 1, "streamed in pieces: {deltas:?}");
    assert!(deltas.concat().contains("Paris"), "{deltas:?}");
    assert_eq!(usage.token_count, TokenCount::Reported);
    assert!(usage.prompt_tokens > 5 && usage.completion_tokens > 0, "{usage:?}");
    assert!(cloud.cost(&usage) > 0.0);
}

#[tokio::test]
async fn non_streamed_answer_with_server_usage() {
    let completion = test_cloud().complete(ask("What is 2 + 3? Answer with the number only.").with_max_tokens(8)).await.unwrap();
    assert!(completion.text.contains('5'), "{completion:?}");
    assert_eq!(completion.usage.token_count, TokenCount::Reported);
    assert!(completion.usage.completion_tokens > 0);
}

#[tokio::test]
async fn json_schema_output_parses() {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"language": {"type": "string"}, "year": {"type": "integer"}},
        "required": ["language", "year"],
        "additionalProperties": false
    });
    let completion = test_cloud()
        .complete(ask("In which year was the Rust programming language first released? Reply as JSON.").with_json_schema(schema).with_max_tokens(64))
        .await
        .unwrap();
    let value: serde_json::Value = serde_json::from_str(&completion.text).unwrap_or_else(|e| panic!("{e}: {:?}", completion.text));
    assert!(value["language"].is_string() && value["year"].is_i64(), "{value}");
}

#[tokio::test]
async fn cancellation_mid_stream() {
    let cloud = test_cloud();
    let stream = cloud.stream(ask("Write a long essay about the history of computing.").with_max_tokens(400)).await.unwrap();
    let (_, usage) = cancel_after(stream, 3).await;
    assert_eq!(usage.finish_reason, FinishReason::Cancelled);
    assert!(usage.completion_tokens < 400);
    // The server is free again: a new request is answered.
    let next = cloud.complete(ask("Say OK.").with_max_tokens(4)).await.unwrap();
    assert!(!next.text.is_empty());
}
