//! `hybridflow-chat`: ask HybridFlow a question and watch it work: where the query (or, with
//! `--decompose`, each subtask of its plan) runs and why, the streamed answer, and what it all cost. With a question on the command line
//! it answers once; without, it reads questions from stdin. Works without a cloud (edge only).

mod view;

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, ValueEnum};
use hybridflow_core::client::{Client, ClientConfig, Routing};
use hybridflow_core::device::{DeviceState, Network};
use hybridflow_core::exec::{Decomposition, EventSink, ExecConfig, PlannerChoice};
use hybridflow_core::model::catalog;
use hybridflow_core::model::cloud::{ApiKey, CloudConfig, Price};
use hybridflow_core::model::edge::{EdgeConfig, EdgeEngine, GpuUse, LoadProgress};
use hybridflow_core::guard::{Budgets, Limits};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Policy {
    /// The learned, budget- and device-aware router (budgets persist in the state directory).
    Learned,
    /// The planner's difficulty hint: hard subtasks, planning and multi-result synthesis to the cloud.
    Difficulty,
    Edge,
    Cloud,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Planner {
    Routed,
    Edge,
    Cloud,
}

#[derive(Parser)]
#[command(about = "Chat with HybridFlow: on-device model, cloud when it pays off")]
struct Args {
    /// The question; omit it to chat line by line.
    question: Option<String>,
    /// GGUF file of the edge model (default: the provisioned SmolLM2-135M Q8_0).
    #[arg(long)]
    model: Option<PathBuf>,
    /// OpenAI-compatible API root, e.g. https://api.example.com/v1 (default: $HYBRIDFLOW_CLOUD_URL;
    /// none means edge only).
    #[arg(long)]
    cloud_url: Option<String>,
    #[arg(long, default_value = "qwen2.5-coder-0.5b-instruct")]
    cloud_model: String,
    /// Name of the environment variable holding the API key (the key itself never goes on the
    /// command line, where other processes could read it).
    #[arg(long, default_value = "HYBRIDFLOW_API_KEY")]
    api_key_env: String,
    #[arg(long, value_enum, default_value_t = Policy::Learned)]
    policy: Policy,
    /// Daily cloud budget in money (learned router); none by default.
    #[arg(long)]
    daily_budget: Option<f64>,
    /// Where budgets and router statistics persist (default: ~/.cache/hybridflow/state).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Planner::Routed)]
    planner: Planner,
    /// Plan every query of more than 8 words into subtasks (by default a query is planned only
    /// when the router predicts a plan pays for itself, which with the shipped measurements it
    /// never does: each query is answered in one step, on the side the router picks).
    #[arg(long)]
    decompose: bool,
    /// Run subtasks one after another (the research prototype's chain mode).
    #[arg(long)]
    sequential: bool,
    /// Run the edge model on ggml (llama.cpp) instead of mistral.rs.
    #[arg(long)]
    ggml: bool,
    /// Use a Vulkan GPU if one passes the probe (implies --ggml, the engine that has Vulkan).
    #[arg(long)]
    vulkan: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = open_client(&args).await?;
    match &args.question {
        Some(question) => ask(&client, question).await,
        None => {
            println!("Type a question, or /offline, /online, /cellular, /battery <percent>, /charging, /help.");
            prompt()?;
            let mut device = DeviceState::default();
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let line = line.trim();
                if let Some(command) = line.strip_prefix('/') {
                    match slash_command(command, &mut device) {
                        Ok(()) => {
                            client.set_device_state(device);
                            println!("device: {device:?}");
                        }
                        Err(help) => println!("{help}"),
                    }
                } else if !line.is_empty() {
                    ask(&client, line).await?;
                }
                prompt()?;
            }
            Ok(())
        }
    }
}

/// Simulates what a phone would report.
fn slash_command(command: &str, device: &mut DeviceState) -> Result<(), String> {
    let mut words = command.split_whitespace();
    match (words.next(), words.next()) {
        (Some("offline"), _) => device.network = Network::None,
        (Some("online" | "wifi"), _) => device.network = Network::Wifi,
        (Some("cellular"), _) => device.network = Network::Cellular,
        (Some("metered"), _) => device.network = Network::Metered,
        (Some("charging"), _) => device.charging = true,
        (Some("battery"), Some(percent)) => {
            let percent: f32 = percent.parse().map_err(|_| "usage: /battery <0-100>".to_string())?;
            device.battery_level = (percent / 100.0).clamp(0.0, 1.0);
            device.charging = false;
        }
        _ => return Err("commands: /offline /online /cellular /metered /battery <percent> /charging".into()),
    }
    Ok(())
}

async fn open_client(args: &Args) -> Result<Client> {
    let model_path = args.model.clone().unwrap_or_else(|| catalog::model_path(catalog::DEFAULT_EDGE_MODEL));
    // (clap's `env` feature would change clap's features, which mistral.rs shares: read it here.)
    let cloud_url = args.cloud_url.clone().or_else(|| std::env::var("HYBRIDFLOW_CLOUD_URL").ok());
    let price = Price { input_per_million: 0.15, output_per_million: 0.60 };
    let cloud = cloud_url.as_ref().map(|url| {
        let mut config = CloudConfig::new(url, &args.cloud_model);
        config.api_key = std::env::var(&args.api_key_env).ok().map(ApiKey::new);
        config.price = price;
        config
    });
    match &cloud_url {
        Some(url) => eprintln!("cloud: {} at {url}", args.cloud_model),
        None => eprintln!("cloud: none configured (set HYBRIDFLOW_CLOUD_URL or --cloud-url): everything runs on the edge"),
    }
    let routing = match args.policy {
        Policy::Learned => Routing::Learned,
        Policy::Difficulty => Routing::ByDifficulty,
        Policy::Edge => Routing::EdgeOnly,
        Policy::Cloud => Routing::CloudOnly,
    };
    let config = ClientConfig {
        edge: Some(EdgeConfig {
            engine: if args.ggml || args.vulkan { EdgeEngine::Ggml } else { EdgeEngine::MistralRs },
            gpu: if args.vulkan { GpuUse::Vulkan } else { GpuUse::Off },
            ..EdgeConfig::new(&model_path)
        }),
        cloud,
        state_dir: Some(args.state_dir.clone().unwrap_or_else(|| catalog::models_dir().with_file_name("state"))),
        budgets: Budgets { per_day: Limits { money: args.daily_budget, ..Limits::default() }, ..Budgets::default() },
        routing,
        exec: ExecConfig {
            decomposition: if args.decompose { Decomposition::LongQueries } else { Decomposition::default() },
            planner: match args.planner {
                Planner::Routed => PlannerChoice::Routed,
                Planner::Edge => PlannerChoice::Edge,
                Planner::Cloud => PlannerChoice::Cloud,
            },
            sequential: args.sequential,
            ..ExecConfig::default()
        },
        ..ClientConfig::default()
    };
    let shown_path = model_path.display().to_string();
    let client = Client::open(config, move |progress| match progress {
        LoadProgress::Checking => eprintln!("edge: checking {shown_path}"),
        LoadProgress::Loading { architecture, file_bytes } => {
            eprintln!("edge: loading {architecture} model ({:.0} MB)...", file_bytes as f64 / 1e6)
        }
        LoadProgress::Ready { load_time, engine, device, gpu_unavailable } => {
            eprintln!("edge: ready in {:.2} s ({engine} on {device})", load_time.as_secs_f64());
            if let Some(why) = gpu_unavailable {
                eprintln!("edge: the GPU is not used: {why}");
            }
        }
    })
    .await?;
    Ok(client)
}

fn prompt() -> Result<()> {
    print!("> ");
    std::io::stdout().flush()?;
    Ok(())
}

/// Answers one question; Ctrl-C cancels it (and only it).
async fn ask(client: &Client, question: &str) -> Result<()> {
    let (sink, mut events) = EventSink::channel();
    let cancel = CancellationToken::new();
    let printer = tokio::spawn(async move {
        let mut view = view::View::default();
        while let Some(event) = events.recv().await {
            view.show(&event);
        }
    });
    let result = {
        let run = client.ask(question, &sink, &cancel);
        tokio::pin!(run);
        tokio::select! {
            result = &mut run => result,
            _ = tokio::signal::ctrl_c() => {
                cancel.cancel();
                run.await
            }
        }
    };
    drop(sink);
    printer.await?;
    if let Err(error) = result {
        println!("\n[{error}]");
    }
    Ok(())
}
