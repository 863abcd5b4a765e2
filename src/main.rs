//! The `overseer` command: parses the command line and hands over to the library, or to the
//! benches and the demo (`bench/`), which live beside this file because nothing else may
//! import them: tests share fixtures with the benches through `overseer-testkit` instead.

mod bench;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use overseer::{
    app::{App, Roles},
    cli::{
        api::{self, Api, CliError},
        items::{self, ItemsFormat, ItemsRequest},
        output,
        submit::{self, Submission},
    },
    config::{Config, ConfigError},
    database::{Database, StoreUrl},
    signal::{StopSignals, wait_for_signal},
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
    /// Base URL of a running Overseer API (also `OVERSEER_SERVER`, or the older
    /// `OVERSEER_API_URL`; default http://127.0.0.1:8080).
    #[arg(long = "server", visible_alias = "api", env = "OVERSEER_SERVER")]
    server: Option<String>,
    /// Bearer token, when the server has one.
    #[arg(long, env = "OVERSEER_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl ApiArgs {
    /// The client for `--server`, else `OVERSEER_SERVER`, else `OVERSEER_API_URL` (its name
    /// before the API contract named the CLI's), else the local default.
    fn api(&self) -> Result<Api, CliError> {
        let server = self
            .server
            .clone()
            .or_else(|| std::env::var("OVERSEER_API_URL").ok())
            .unwrap_or_else(|| api::DEFAULT_SERVER.to_string());
        Api::new(&server, self.token.as_deref())
    }
}

// Parsed once at start-up, so the size of the largest variant (`sim`'s flags) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the engine in one process.
    Serve,
    /// Run only the engine (claims and runs jobs; no HTTP).
    Worker,
    /// Run only the HTTP API (jobs run in workers).
    Api,
    /// Create the database if needed and apply pending migrations; with --from and --to, copy
    /// every job and item from the embedded store to PostgreSQL.
    ///
    /// Example: overseer migrate --from sqlite:overseer.db --to postgres://db.internal/overseer
    Migrate {
        /// The embedded store to copy from (`sqlite:PATH`); stop its node first.
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// The PostgreSQL database to copy to (created and migrated when missing; it must
        /// hold no job yet).
        #[arg(long, requires = "from")]
        to: Option<String>,
    },
    /// Run the demo: start the Google Ads simulator and the server in-process, submit a
    /// 10,000-item theme job over 50 customers, follow it to the end and keep serving the
    /// dashboard until Ctrl-C.
    Demo(bench::demo::DemoArgs),
    /// Run the Google Ads simulator (an HTTP server on its own port).
    Sim(Box<overseer_sim::SimArgs>),
    /// Submit a job from a CSV (or .json) file.
    ///
    /// Example: overseer submit groups.csv --operation google_ads.theme_rsa
    /// --params '{"theme": "black_friday"}' --follow
    ///
    /// Preview first, then run for real (a dry run changes nothing but uses API quota):
    ///   overseer submit groups.csv --operation google_ads.theme_rsa \
    ///     --params '{"theme": "black_friday"}' --dry-run --follow
    ///   overseer jobs run 42 --follow
    ///
    /// With --follow, the exit status says how the job ended: 0 completed with no failed item,
    /// 2 completed with failed items, 1 failed, cancelled, or not followed to its end.
    #[command(verbatim_doc_comment)]
    Submit {
        file: PathBuf,
        /// The operation to run on each item (`noop`, `google_ads.theme_rsa`); required. A JSON
        /// file names it inside and may leave this out.
        #[arg(long)]
        operation: Option<String>,
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
        /// A dry run: every read is made and every change validated, none is made; each item
        /// ends in the status a real run would give it. `overseer jobs run ID` runs it for real.
        #[arg(long)]
        dry_run: bool,
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
    /// List the newest jobs, one line each.
    ///
    /// Example: overseer jobs list --server http://overseer.internal:8080
    #[command(verbatim_doc_comment)]
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one job, as the API's JSON.
    ///
    /// Example: overseer jobs show 42
    #[command(visible_alias = "get", verbatim_doc_comment)]
    Show {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Follow one job's progress until it ends, across restarts of the server.
    ///
    /// Example: overseer jobs watch 42
    ///
    /// Exit status: 0 completed with no failed item, 2 completed with failed items, 1 failed,
    /// cancelled, or not followed to its end.
    #[command(verbatim_doc_comment)]
    Watch {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Pause a job: no new calls; outcomes already obtained are kept.
    ///
    /// Example: overseer jobs pause 42
    #[command(verbatim_doc_comment)]
    Pause {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Resume a paused job.
    ///
    /// Example: overseer jobs resume 42
    #[command(verbatim_doc_comment)]
    Resume {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Cancel a job: its pending items are skipped.
    ///
    /// Example: overseer jobs cancel 42
    #[command(verbatim_doc_comment)]
    Cancel {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Run a finished job's failed items again.
    ///
    /// Example: overseer jobs retry 42
    #[command(verbatim_doc_comment)]
    Retry {
        id: i64,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Run a finished dry run for real: a new job from the same items and params (once).
    ///
    /// Example: overseer jobs run 42 --follow
    #[command(verbatim_doc_comment)]
    Run {
        id: i64,
        /// Print progress until the new job ends (the exit status as for submit --follow).
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Write a job's items: CSV (the file to fix and submit again) or JSON lines.
    ///
    /// Example: overseer jobs items 42 --status failed --output failed.csv
    #[command(verbatim_doc_comment)]
    Items {
        id: i64,
        /// Only items with this status (pending, succeeded, failed, skipped).
        #[arg(long)]
        status: Option<String>,
        /// Only this customer's items.
        #[arg(long)]
        customer_id: Option<String>,
        #[arg(long, value_enum, default_value = "csv")]
        format: ItemsFormat,
        /// Write to this file instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
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
        /// Job shapes to run end to end instead (repeatable): many-small, few-large, slow,
        /// skewed, restart.
        #[arg(long, value_enum)]
        shape: Vec<bench::shapes::Shape>,
        /// Every job shape.
        #[arg(long)]
        all_shapes: bool,
    },
    /// API latency under load while a 100,000-item job runs, and the list cache at 10,000 jobs.
    Api,
    /// A job of 1,000,000 items: cancel, retry, pause and resume latency, the background item
    /// batches' speed, and the CSV export of 100,000 and 1,000,000 items against COPY.
    BigJobs,
    /// A large noop job end to end, against the raw batched UPDATE speed of PostgreSQL.
    Engine {
        #[arg(long, default_value_t = 1_000_000)]
        items: u64,
        #[arg(long, default_value_t = 1_000)]
        customers: u64,
        /// `sqlite`: the embedded store against PostgreSQL, with the ratios.
        #[arg(long, value_parser = ["postgres", "sqlite"], default_value = "postgres")]
        store: String,
    },
    /// Submission speed and memory: 1M CSV rows and a 1M-item JSON body through the real path,
    /// against PostgreSQL's own COPY of the same rows.
    Ingest {
        #[arg(long, default_value_t = 1_000_000)]
        items: u64,
        #[arg(long, default_value_t = 1_000)]
        customers: u64,
        /// Runs one measured submission only (the bench runs each in a process of its own).
        #[arg(long, hide = true)]
        phase: Option<String>,
    },
    /// The seeds' scenario against the simulator: a theme job of 50,000 items over 300
    /// customers at 50 ± 20 ms per request, 100 requests/s per developer token, 10 per customer.
    GoogleAds(bench::google_ads::GoogleAdsBenchArgs),
    /// Healing: kill -9 to resumed work, chaos kill to restarted actor, node death to adoption.
    Recovery {
        /// Measurements of each kind.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// The nodes' lease (OVERSEER_LEASE_MS): adoption waits for it to expire.
        #[arg(long, default_value_t = 5_000)]
        lease_ms: u64,
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
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            // One line: the error and its causes, never a backtrace.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; its exit status (0 unless a followed job ended badly, see `exit_code`).
async fn run(cli: Cli) -> anyhow::Result<u8> {
    let config = match Config::load() {
        Ok(config) => config,
        // A setting no one reads is refused as a usage error (exit code 2, as for a bad flag),
        // before anything starts: see `config::names`.
        Err(error @ ConfigError::Unknown(_)) => {
            eprintln!("error: {error}");
            std::process::exit(2);
        }
        Err(error) => return Err(error.into()),
    };
    let quiet = matches!(cli.command, Command::Demo(_) | Command::Bench { .. });
    // Demos and benches provoke throttling on purpose; the warning the Google Ads client logs
    // for each refused call (with its request-id, for a real operator) would bury their output.
    let default_filter = if quiet {
        "warn,overseer::ops::google_ads::client=error"
    } else {
        "info"
    };
    telemetry::init_with_default(&config.log_format, default_filter);
    match cli.command {
        Command::Serve => run_roles(config, Roles::SERVE).await.map(|()| 0),
        Command::Worker => run_roles(config, Roles::WORKER).await.map(|()| 0),
        Command::Api => run_roles(config, Roles::API).await.map(|()| 0),
        Command::Migrate { from, to } => migrate(config, from, to).await.map(|()| 0),
        Command::Demo(args) => bench::demo::run(config, args).await.map(|()| 0),
        Command::Sim(args) => overseer_sim::run(*args, wait_for_signal())
            .await
            .map(|()| 0),
        Command::Submit {
            file,
            operation,
            name,
            priority,
            params,
            follow,
            dry_run,
            api,
        } => Ok(submit_command(
            &api.api()?,
            &Submission {
                file: &file,
                operation: operation.as_deref().unwrap_or_default(),
                name: name.as_deref(),
                priority,
                params: &params,
                dry_run,
            },
            operation.is_some(),
            follow,
        )
        .await?),
        Command::Jobs { command } => Ok(jobs_command(command).await?),
        Command::Bench { command } => run_bench(config, command).await.map(|()| 0),
    }
}

async fn run_bench(config: Config, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Engine {
            items,
            customers,
            store,
        } => match store.as_str() {
            "sqlite" => bench::store_compare::run(config, items, customers).await,
            _ => bench::engine::run(config, items, customers).await,
        },
        BenchCommand::Ingest {
            items,
            customers,
            phase,
        } => bench::ingest::run(config, items, customers, phase).await,
        BenchCommand::Api => bench::api::run(config).await,
        BenchCommand::BigJobs => bench::big_jobs::run(config).await,
        BenchCommand::GoogleAds(args) => bench::google_ads::run(config, args).await,
        BenchCommand::Recovery { rounds, lease_ms } => {
            bench::recovery::run(config, rounds, lease_ms).await
        }
        BenchCommand::Limiter {
            secs,
            customers,
            workers_per_customer,
            mode,
            shape,
            all_shapes,
        } => {
            use bench::limiter::Mode;
            let modes = match mode.as_str() {
                "adaptive" => vec![Mode::Adaptive],
                "baseline" => vec![Mode::Baseline],
                "both" => vec![Mode::Adaptive, Mode::Baseline],
                other => anyhow::bail!("--mode {other:?}: adaptive, baseline or both"),
            };
            let shapes = if all_shapes {
                bench::shapes::Shape::ALL.to_vec()
            } else {
                shape
            };
            if !shapes.is_empty() {
                return bench::shapes::run(
                    config,
                    &shapes,
                    secs,
                    modes.contains(&Mode::Baseline),
                    modes.contains(&Mode::Adaptive),
                )
                .await;
            }
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
    }
}

async fn submit_command(
    api: &Api,
    submission: &Submission<'_>,
    operation_given: bool,
    follow: bool,
) -> Result<u8, CliError> {
    let is_json = submission.file.extension().is_some_and(|e| e == "json");
    // A JSON submission names its operation inside.
    if !operation_given && !is_json {
        return Err(CliError::Input(
            "--operation is required: name what to run on each item, e.g. --operation \
             google_ads.theme_rsa (or --operation noop to try a file)"
                .into(),
        ));
    }
    let job = submit::submit(api, submission).await?;
    let Some(id) = job["id"].as_i64() else {
        return Err(CliError::BadAnswer {
            url: format!("{}/api/jobs", api.base()),
            reason: format!("no job id in {job}"),
        });
    };
    let kind = if job["dry_run"] == true {
        " as a dry run"
    } else {
        ""
    };
    output::line(format!(
        "submitted job {id}{kind} ({} items)",
        job["total_items"]
    ))?;
    if !follow {
        return Ok(0);
    }
    Ok(submit::exit_code(&submit::follow(api, id).await?))
}

async fn jobs_command(command: JobsCommand) -> Result<u8, CliError> {
    let change = |api: &ApiArgs, id: i64, action: &'static str| {
        let api = api.api();
        async move {
            let job = api?.change(id, action).await?;
            output::line(submit::progress_line(&job))?;
            Ok(0)
        }
    };
    match command {
        JobsCommand::List { api } => {
            let list = api.api()?.jobs().await?;
            for job in list["jobs"].as_array().into_iter().flatten() {
                output::line(submit::progress_line(job))?;
            }
            Ok(0)
        }
        JobsCommand::Show { id, api } => {
            let job = api.api()?.job(id).await?;
            output::line(serde_json::to_string_pretty(&job).unwrap_or_default())?;
            Ok(0)
        }
        JobsCommand::Watch { id, api } => {
            let job = submit::follow(&api.api()?, id).await?;
            Ok(submit::exit_code(&job))
        }
        JobsCommand::Pause { id, api } => change(&api, id, "pause").await,
        JobsCommand::Resume { id, api } => change(&api, id, "resume").await,
        JobsCommand::Cancel { id, api } => change(&api, id, "cancel").await,
        JobsCommand::Retry { id, api } => change(&api, id, "retry").await,
        JobsCommand::Run { id, follow, api } => {
            let api = api.api()?;
            let job = api.change(id, "run").await?;
            let real = job["id"].as_i64().unwrap_or_default();
            output::line(format!("job {real} runs dry run {id} for real"))?;
            if !follow {
                return Ok(0);
            }
            Ok(submit::exit_code(&submit::follow(&api, real).await?))
        }
        JobsCommand::Items {
            id,
            status,
            customer_id,
            format,
            output,
            api,
        } => {
            items::write(
                &api.api()?,
                &ItemsRequest {
                    id,
                    status: status.as_deref(),
                    customer_id: customer_id.as_deref(),
                    format,
                    output: output.as_deref(),
                },
            )
            .await?;
            Ok(0)
        }
    }
}

/// `overseer migrate`: the schema of the configured store, or a copy between two stores.
async fn migrate(config: Config, from: Option<String>, to: Option<String>) -> anyhow::Result<()> {
    if let (Some(from), Some(to)) = (from, to) {
        let StoreUrl::Sqlite(source) = StoreUrl::parse(&from).map_err(anyhow::Error::msg)? else {
            anyhow::bail!("--from must be the embedded store (sqlite:PATH), not {from:?}");
        };
        let StoreUrl::Postgres(target) = StoreUrl::parse(&to).map_err(anyhow::Error::msg)? else {
            anyhow::bail!("--to must be a PostgreSQL URL (postgres://…)");
        };
        let settings = overseer::store::pool::PoolSettings {
            database_url: target,
            ..config.pool_settings()
        };
        let copied = overseer::store_copy::sqlite_to_postgres(&source, &settings).await?;
        println!(
            "copied {} jobs, {} items and {} throughput samples from {} to PostgreSQL; \
             start the nodes with DATABASE_URL set to it",
            copied.jobs,
            copied.items,
            copied.samples,
            source.display()
        );
        return Ok(());
    }
    let applied = match StoreUrl::parse(&config.database_url).map_err(anyhow::Error::msg)? {
        StoreUrl::Sqlite(path) => {
            // Opening the embedded store applies its migrations.
            Database::open_sqlite(&path, 1).await?;
            Vec::new()
        }
        StoreUrl::Postgres(_) => {
            let settings = config.pool_settings();
            store::pool::ensure_database(&settings).await?;
            store::migrate::run(&store::pool::pg_config(&settings)?).await?
        }
    };
    if applied.is_empty() {
        println!("the schema is up to date");
    }
    for name in applied {
        println!("applied {name}");
    }
    Ok(())
}

async fn run_roles(config: Config, roles: Roles) -> anyhow::Result<()> {
    // A role the store cannot serve is a usage error, refused before anything starts.
    if let Err(problem) =
        StoreUrl::parse(&config.database_url).and_then(|url| roles.check_store(&url))
    {
        eprintln!("error: {problem}");
        std::process::exit(2);
    }
    tracing::info!(config = %config.redacted(), "starting");
    // Listening before the start, so a stop during start-up, or two stops at once, is heard.
    let mut signals = StopSignals::listen();
    let app = App::start(config, roles).await?;
    signals.next().await;
    tracing::info!(
        deadline_ms = app.config.engine.shutdown_deadline.as_millis() as u64,
        "shutting down gracefully: no new calls, in-flight calls finish, outcomes are committed, \
         leases given back (a second signal exits at once)"
    );
    // A second signal exits at once. Nothing durable is lost: items whose outcome is not
    // committed stay pending, and their leases expire for another node (or this one, restarted
    // under the same node id, which frees them at once).
    actix_rt::spawn(async move {
        signals.next().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
    if !app.shutdown().await {
        // Nothing durable is lost, but say so: in-flight work did not finish in time.
        anyhow::bail!("the graceful shutdown did not finish within shutdown_deadline_ms");
    }
    tracing::info!("stopped");
    Ok(())
}
