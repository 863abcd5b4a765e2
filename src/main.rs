//! The `overseer` command: parses the command line and hands over to the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use overseer::{
    app::{App, Roles},
    bench,
    cli::submit::{self, Submission},
    config::Config,
    store, telemetry,
};

#[derive(Parser)]
#[command(
    name = "overseer",
    version,
    about = "Runs long bulk jobs against rate-limited APIs and never loses track of them."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ApiArgs {
    /// Base URL of a running Overseer API.
    #[arg(
        long,
        env = "OVERSEER_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    api: String,
    /// Bearer token, when the server has one.
    #[arg(long, env = "OVERSEER_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the engine in one process.
    Serve,
    /// Run only the engine (claims and runs jobs; no HTTP).
    Worker,
    /// Run only the HTTP API (jobs run in workers).
    Api,
    /// Create the database if needed and apply pending migrations.
    Migrate,
    /// Run a demo: start the server in-process, submit a job and follow it to the end.
    Demo {
        /// Items in the demo job.
        #[arg(long, default_value_t = 10_000)]
        items: u64,
        /// Customers the items are spread over.
        #[arg(long, default_value_t = 50)]
        customers: u64,
    },
    /// Submit a job from a CSV (or .json) file.
    Submit {
        file: PathBuf,
        #[arg(long, default_value = "noop")]
        operation: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        /// The operation's params, as JSON.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Print progress until the job ends.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Look at jobs.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Benchmarks that print numbers.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// List the newest jobs.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one job.
    Get {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Follow one job's progress until it ends.
    Watch {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// The RateLimiter against hidden quotas in the simulator (100/10 and 37/3 requests/s),
    /// adaptive and the seeds' limiter: goodput share of the quota and throttled share.
    Limiter {
        /// Seconds per run (the figure is measured with 60 or more).
        #[arg(long, default_value_t = 60)]
        secs: u64,
        #[arg(long, default_value_t = 20)]
        customers: u32,
        #[arg(long, default_value_t = 2)]
        workers_per_customer: u32,
        /// `adaptive`, `baseline` or `both`.
        #[arg(long, default_value = "both")]
        mode: String,
    },
    /// API latency under load while a 100,000-item job runs, and the list cache at 10,000 jobs.
    Api,
    /// A large noop job end to end, against the raw batched UPDATE speed of PostgreSQL.
    Engine {
        #[arg(long, default_value_t = 1_000_000)]
        items: u64,
        #[arg(long, default_value_t = 1_000)]
        customers: u64,
    },
    /// Live progress: commit-to-websocket delay (p50, p99) and throughput with 0/1/100 clients.
    Progress {
        #[arg(long, default_value_t = 300_000)]
        items: u64,
        #[arg(long, default_value_t = 300)]
        customers: u64,
        #[arg(long, default_value_t = 100)]
        clients: usize,
    },
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load()?;
    telemetry::init(&config.log_format);
    match cli.command {
        Command::Serve => run_roles(config, Roles::SERVE).await,
        Command::Worker => {
            run_roles(
                config,
                Roles {
                    engine: true,
                    api: false,
                },
            )
            .await
        }
        Command::Api => {
            run_roles(
                config,
                Roles {
                    engine: false,
                    api: true,
                },
            )
            .await
        }
        Command::Migrate => {
            let settings = config.pool_settings();
            store::pool::ensure_database(&settings).await?;
            let applied = store::migrate::run(&store::pool::pg_config(&settings)?).await?;
            if applied.is_empty() {
                println!("the schema is up to date");
            }
            for name in applied {
                println!("applied {name}");
            }
            Ok(())
        }
        Command::Demo { items, customers } => bench::demo::run(config, items, customers).await,
        Command::Submit {
            file,
            operation,
            name,
            priority,
            params,
            follow,
            api,
        } => {
            let job = submit::submit(&Submission {
                api: &api.api,
                token: api.token.as_deref(),
                file: &file,
                operation: &operation,
                name: name.as_deref(),
                priority,
                params: &params,
            })
            .await?;
            let id = job["id"]
                .as_i64()
                .context("the server returned no job id")?;
            println!("submitted job {id} ({} items)", job["total_items"]);
            if follow {
                submit::follow(&api.api, api.token.as_deref(), id).await?;
            }
            Ok(())
        }
        Command::Jobs { command } => match command {
            JobsCommand::List { api } => {
                let list = submit::list_jobs(&api.api, api.token.as_deref()).await?;
                for job in list["jobs"].as_array().into_iter().flatten() {
                    println!("{}", submit::progress_line(job));
                }
                Ok(())
            }
            JobsCommand::Get { id, api } => {
                let job = submit::get_job(&api.api, api.token.as_deref(), id).await?;
                println!("{}", serde_json::to_string_pretty(&job)?);
                Ok(())
            }
            JobsCommand::Watch { id, api } => {
                submit::follow(&api.api, api.token.as_deref(), id).await?;
                Ok(())
            }
        },
        Command::Bench { command } => match command {
            BenchCommand::Engine { items, customers } => {
                bench::engine::run(config, items, customers).await
            }
            BenchCommand::Api => bench::api::run(config).await,
            BenchCommand::Limiter {
                secs,
                customers,
                workers_per_customer,
                mode,
            } => {
                use bench::limiter::Mode;
                let modes = match mode.as_str() {
                    "adaptive" => vec![Mode::Adaptive],
                    "baseline" => vec![Mode::Baseline],
                    "both" => vec![Mode::Adaptive, Mode::Baseline],
                    other => anyhow::bail!("--mode {other:?}: adaptive, baseline or both"),
                };
                bench::limiter::run(bench::limiter::Options {
                    secs,
                    customers,
                    workers_per_customer,
                    modes,
                })
                .await
            }
            BenchCommand::Progress {
                items,
                customers,
                clients,
            } => bench::progress::run(config, items, customers, clients).await,
        },
    }
}

async fn run_roles(config: Config, roles: Roles) -> anyhow::Result<()> {
    tracing::info!(config = %config.redacted(), "starting");
    let app = App::start(config, roles).await?;
    wait_for_signal().await;
    tracing::info!("shutting down");
    app.stop().await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
