//! `hybridflow-chat`: ask the edge model a question, watch the answer stream, see what it cost.
//! With a question on the command line it answers once; without, it reads questions from stdin.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use futures::StreamExt;
use hybridflow_core::model::catalog;
use hybridflow_core::model::edge::{EdgeConfig, EdgeModel, LoadProgress};
use hybridflow_core::model::{ChatModel, ChatRequest, Message, StreamEvent, Usage};

#[derive(Parser)]
#[command(about = "Chat with HybridFlow's on-device model")]
struct Args {
    /// The question; omit it to chat line by line.
    question: Option<String>,
    /// GGUF file of the edge model (default: the provisioned SmolLM2-135M Q8_0).
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
}

const SYSTEM_PROMPT: &str = "You are a helpful assistant. Answer concisely.";

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let model_path = args.model.unwrap_or_else(|| catalog::model_path(catalog::DEFAULT_EDGE_MODEL));
    let shown_path = model_path.display().to_string();
    let model = EdgeModel::load(EdgeConfig::new(&model_path), move |progress| match progress {
        LoadProgress::Checking => eprintln!("checking {shown_path}"),
        LoadProgress::Loading { architecture, file_bytes } => {
            eprintln!("loading {architecture} model ({:.0} MB)...", file_bytes as f64 / 1e6)
        }
        LoadProgress::Ready { load_time } => eprintln!("ready in {:.2} s", load_time.as_secs_f64()),
    })
    .await?;

    match args.question {
        Some(question) => answer(&model, &question, args.max_tokens).await,
        None => {
            let stdin = std::io::stdin();
            prompt()?;
            for line in stdin.lock().lines() {
                let question = line?;
                if !question.trim().is_empty() {
                    answer(&model, question.trim(), args.max_tokens).await?;
                }
                prompt()?;
            }
            Ok(())
        }
    }
}

fn prompt() -> Result<()> {
    print!("> ");
    std::io::stdout().flush()?;
    Ok(())
}

async fn answer(model: &EdgeModel, question: &str, max_tokens: u32) -> Result<()> {
    let request = ChatRequest::new(vec![Message::system(SYSTEM_PROMPT), Message::user(question)])
        .with_max_tokens(max_tokens);
    println!("[edge: {}]", model.name());
    let mut stream = model.stream(request).await?;
    let mut stdout = std::io::stdout();
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::Delta(text) => {
                write!(stdout, "{text}")?;
                stdout.flush()?;
            }
            StreamEvent::Finished(usage) => println!("\n{}", summary(&usage)),
        }
    }
    Ok(())
}

fn summary(usage: &Usage) -> String {
    format!(
        "-- edge: {} prompt + {} completion tokens, first token {:.0} ms, {:.1} tok/s decode, {:.2} s total, finish: {:?}",
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.time_to_first_token.unwrap_or_default().as_secs_f64() * 1e3,
        usage.decode_tokens_per_second,
        usage.total_time.as_secs_f64(),
        usage.finish_reason,
    )
}
