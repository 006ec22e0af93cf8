//! `recon`: run the reconciliation pipeline locally, list and show runs, apply migrations.
//! The binary is glue: every step is a use case of `recon-app`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use chrono::{NaiveDate, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use recon_app::items as app_items;
use recon_app::notify::OutboxMailer;
use recon_app::objects::LocalStore;
use recon_app::pipeline::{run_day, DayOptions};
use recon_app::settings::Settings;
use recon_app::steps::{execution_name, StartExecution, Started};
use recon_app::Deps;
use recon_core::{Action, DaySummary, ItemStatus, Processor, RunConfig, RunStatus};
use recon_store::{BatchOutcome, DbConfig, ItemFilter, Store};

mod table;

#[derive(Parser)]
#[command(
    name = "recon",
    version,
    about = "Daily payment reconciliation: Stripe, PayPal and Square against the ledger"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// A reconciliation day: `YYYY-MM-DD`, a year between 1990 and 2100.
fn parse_day(s: &str) -> Result<NaiveDate, String> {
    let ok = s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-';
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().filter(|_| ok);
    match d {
        Some(d) if (1990..=2100).contains(&chrono::Datelike::year(&d)) => Ok(d),
        _ => Err(format!(
            "{s:?} is not a reconciliation date: expected YYYY-MM-DD between 1990 and 2100"
        )),
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum OutputFormat {
    Table,
    Json,
}

/// The functions `recon step` runs: the state machine's Lambda steps.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum StepFunction {
    FetchStripe,
    FetchPaypal,
    FetchSquare,
    FetchLedger,
    Match,
    Notify,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ListFormat {
    Table,
    Json,
    Csv,
}

/// Which items: every flag narrows the selection.
#[derive(clap::Args, Clone, Default)]
struct ItemFilterArgs {
    /// open, acknowledged or resolved; default: the open and acknowledged ones.
    #[arg(long)]
    status: Option<ItemStatus>,
    #[arg(long)]
    processor: Option<Processor>,
    /// A category (missing_in_ledger, amount_mismatch, ...) or a family (missing, mismatch, duplicate, invalid).
    #[arg(long)]
    category: Option<String>,
    /// At least this many days since first seen.
    #[arg(long)]
    min_age: Option<u32>,
    #[arg(long)]
    assignee: Option<String>,
    /// Every status, resolved ones too.
    #[arg(long, conflicts_with = "status")]
    all_statuses: bool,
}

#[derive(clap::Args, Clone)]
struct ItemsCommon {
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// The day ages are counted to; default today (UTC).
    #[arg(long, global = true, value_parser = parse_day)]
    as_of: Option<NaiveDate>,
}

/// What an operator does to items.
#[derive(clap::Args, Clone)]
struct ActArgs {
    /// The items (ids from `recon items`); or --all-matching with filters.
    ids: Vec<i64>,
    /// Act on every item the filters select (asks first unless --yes).
    #[arg(long, conflicts_with = "ids")]
    all_matching: bool,
    #[command(flatten)]
    filter: ItemFilterArgs,
    /// Do not ask before a bulk action.
    #[arg(long)]
    yes: bool,
    /// Who acts; default RECON_ACTOR, else the OS user.
    #[arg(long)]
    actor: Option<String>,
    /// The version you looked at (`recon items show`): refused as a conflict if the item changed since.
    #[arg(long)]
    expect_version: Option<i32>,
    /// Say what would change and change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Subcommand, Clone)]
enum ItemsCommand {
    /// One item with its history.
    Show {
        id: i64,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Acknowledge: someone is looking at it.
    Ack {
        #[command(flatten)]
        act: ActArgs,
    },
    /// Assign to a person.
    Assign {
        #[command(flatten)]
        act: ActArgs,
        #[arg(long)]
        to: String,
    },
    /// Add a note to the history.
    Comment {
        #[command(flatten)]
        act: ActArgs,
        #[arg(long)]
        note: String,
    },
    /// Resolve with a reason (a note too for `other` and `written_off`).
    Resolve {
        #[command(flatten)]
        act: ActArgs,
        /// booked_in_ledger, processor_corrected, timing, refunded, duplicate_reversed, not_an_issue,
        /// written_off (with --note) or other (with --note).
        #[arg(long)]
        reason: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Reopen a resolved item.
    Reopen {
        #[command(flatten)]
        act: ActArgs,
        #[arg(long)]
        note: Option<String>,
    },
    /// The selected items as CSV (to stdout or --out) with empty action/reason/note/to columns to fill in.
    Export {
        #[command(flatten)]
        filter: ItemFilterArgs,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Apply an edited export: every row with an action, all or nothing.
    Import {
        file: PathBuf,
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Reconcile one day in this process: stage inputs, match, record runs, write reports, notify.
    Run {
        /// The day to reconcile (UTC), YYYY-MM-DD; default yesterday.
        #[arg(long, value_parser = parse_day)]
        date: Option<NaiveDate>,
        /// Comma-separated processors; default all (stripe,paypal,square).
        #[arg(long, value_delimiter = ',')]
        processors: Vec<Processor>,
        /// Local directory laid out like the S3 bucket.
        #[arg(long, default_value = "./.recon/store", conflicts_with = "bucket")]
        store: PathBuf,
        /// S3 bucket instead of a local directory.
        #[arg(long)]
        bucket: Option<String>,
        /// PostgreSQL URL; default DATABASE_URL, then DB_* variables, then the local server.
        #[arg(long)]
        database_url: Option<String>,
        /// Later runs an unmatched item stays pending before it is reported missing (0: at once); default
        /// GRACE_DAYS, else 1.
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=366))]
        grace_days: Option<u32>,
        /// Match each run as this many hash partitions and merge them (the same result; how the state
        /// machine shards a day too large for one invocation).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
        partitions: u32,
        /// With --partitions: run each sharded run through the split step as the state machine does (the
        /// staged objects cut into byte ranges of about this many bytes, each partition matched from its own
        /// files under work/ only).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        split_bytes: Option<u64>,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        /// Do not send (or write) the operations email.
        #[arg(long)]
        no_notify: bool,
        /// Directory for `.eml` files instead of SES; default RECON_OUTBOX, else ./.recon/outbox.
        #[arg(long)]
        outbox: Option<PathBuf>,
    },
    /// Start the Step Functions state machine for a day (a manual run in AWS).
    Start {
        #[arg(long, value_parser = parse_day)]
        date: NaiveDate,
        /// Comma-separated processors; default all.
        #[arg(long, value_delimiter = ',')]
        processors: Vec<Processor>,
        /// Default STATE_MACHINE_ARN.
        #[arg(long)]
        state_machine_arn: Option<String>,
    },
    /// List runs, newest first.
    Runs {
        #[arg(long, value_parser = parse_day)]
        date: Option<NaiveDate>,
        #[arg(long)]
        processor: Option<Processor>,
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// One run and its discrepancies.
    Show {
        run_id: uuid::Uuid,
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
    },
    /// Work the exceptions: list, show and act on items (discrepancies that live until resolved).
    Items {
        #[command(subcommand)]
        command: Option<ItemsCommand>,
        #[command(flatten)]
        filter: ItemFilterArgs,
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
        #[command(flatten)]
        common: ItemsCommon,
    },
    /// Run one Lambda step here, on a local store: its event JSON in (a file, or `-` for standard input), its
    /// answer JSON out, exactly what the function would return (the same step code). For replaying an event
    /// of the state machine, and for measuring one worker of a sharded day on its own.
    Step {
        #[arg(value_enum)]
        function: StepFunction,
        /// The event: a JSON file, or `-` for standard input.
        #[arg(long)]
        input: PathBuf,
        /// Local directory laid out like the S3 bucket.
        #[arg(long, default_value = "./.recon/store")]
        store: PathBuf,
        /// PostgreSQL URL (match and notify); default DATABASE_URL, then DB_* variables, then the local server.
        #[arg(long)]
        database_url: Option<String>,
        /// Directory for `.eml` files (notify); default RECON_OUTBOX, else ./.recon/outbox.
        #[arg(long)]
        outbox: Option<PathBuf>,
    },
    /// Apply database migrations.
    Migrate {
        #[arg(long)]
        database_url: Option<String>,
    },
}

/// The database settings, `--database-url` winning over the environment's.
fn db_config(settings: &Settings, url: Option<&str>) -> Result<DbConfig> {
    Ok(match url {
        Some(u) => DbConfig::from_url(u)?,
        None => settings.database.config()?,
    })
}

fn store_from(settings: &Settings, url: Option<&str>) -> Result<Store> {
    Ok(Store::new(&db_config(settings, url)?)?)
}

/// For `run` and `migrate`: create the database if the server has none of that name, then migrate.
async fn ready_store(settings: &Settings, url: Option<&str>) -> Result<Store> {
    let cfg = db_config(settings, url)?;
    if Store::create_database_if_missing(&cfg).await? {
        tracing::info!(database = ?cfg.pg.get_dbname(), "created the database");
    }
    let store = Store::new(&cfg)?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

fn init_tracing(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

#[tokio::main]
async fn main() -> ExitCode {
    recon_app::alloc::batch_settings();
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings);
    settings.install();
    match dispatch(cli, settings).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(cli: Cli, settings: Settings) -> Result<ExitCode> {
    match cli.command {
        Command::Run {
            date,
            processors,
            store,
            bucket,
            database_url,
            grace_days,
            partitions,
            split_bytes,
            format,
            no_notify,
            outbox,
        } => {
            let date = date.unwrap_or_else(|| Utc::now().date_naive().pred_opt().unwrap_or_default());
            let processors = if processors.is_empty() {
                Processor::ALL.to_vec()
            } else {
                processors
            };
            let db = ready_store(&settings, database_url.as_deref()).await?;
            let config = RunConfig {
                grace_days: grace_days.unwrap_or(settings.grace_days),
                partitions,
                ..settings.run_config()
            };
            let notify = (!no_notify).then(|| settings.notify.clone());
            let outbox = outbox.unwrap_or_else(|| settings.outbox.clone());
            let opts = DayOptions {
                date,
                processors,
                trigger: recon_app::Trigger::Cli,
                execution: format!("cli:{}", uuid::Uuid::now_v7()),
                split_bytes,
                notify,
            };
            let apis = settings.apis.sources();
            let day = match &bucket {
                // S3 as the object store and SES as the mailer (credentials and region from the environment)
                Some(b) => {
                    let aws = recon_aws::Aws::load(settings.ses_region.as_deref()).await;
                    let objects = recon_aws::S3Store::new(aws.s3.clone(), b);
                    let mailer = recon_aws::SesMailer {
                        client: aws.ses.clone(),
                        configuration_set: settings.ses_configuration_set.clone(),
                    };
                    let deps = Deps {
                        objects: &objects,
                        db: &db,
                        config: &config,
                    };
                    run_day(&deps, &apis, Some(&mailer), &opts).await?
                }
                None => {
                    let objects = LocalStore::new(&store);
                    let mailer = OutboxMailer { dir: outbox };
                    let deps = Deps {
                        objects: &objects,
                        db: &db,
                        config: &config,
                    };
                    run_day(&deps, &apis, Some(&mailer), &opts).await?
                }
            };
            print_day(&day.summary, format)?;
            for r in &day.runs {
                let where_ = r
                    .report_link
                    .clone()
                    .unwrap_or_else(|| format!("{}/{}report.html", store.display(), r.report_prefix));
                // (with --bucket the link is a presigned URL)
                eprintln!("report  {:<7} {where_}", r.summary.processor.as_str());
            }
            if let Some(e) = &day.email {
                eprintln!("email   {e}");
            }
            let failed = day.summary.runs.iter().any(|r| r.status == RunStatus::Failed);
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Start {
            date,
            processors,
            state_machine_arn,
        } => {
            let processors = if processors.is_empty() {
                Processor::ALL.to_vec()
            } else {
                processors
            };
            let date_s = date.to_string();
            let stamp = Utc::now().format("%Y%m%dT%H%M%S").to_string();
            let mut parts = vec![recon_app::Trigger::Manual.as_str(), date_s.as_str()];
            parts.extend(processors.iter().map(|p| p.as_str()));
            parts.push(&stamp);
            let name = execution_name(&parts);
            let input = serde_json::json!({"date": date, "processors": processors, "trigger": recon_app::Trigger::Manual});
            let Some(arn) = state_machine_arn.or_else(|| settings.state_machine_arn.clone()) else {
                bail!("no state machine: pass --state-machine-arn or set STATE_MACHINE_ARN");
            };
            let aws = recon_aws::Aws::load(settings.ses_region.as_deref()).await;
            let executions = recon_aws::SfnExecutions {
                client: aws.sfn.clone(),
                state_machine_arn: Some(arn),
            };
            match executions.start(&name, &input).await? {
                Started::New { execution_arn } => println!("started {execution_arn}"),
                Started::AlreadyExists => println!("already running: {name}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Runs {
            date,
            processor,
            database_url,
            format,
        } => {
            let db = store_from(&settings, database_url.as_deref())?;
            let runs = db.list_runs(date, processor, 200).await?;
            match format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&runs)?),
                OutputFormat::Table => print!("{}", table::runs(&runs)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show {
            run_id,
            database_url,
            format,
        } => {
            let db = store_from(&settings, database_url.as_deref())?;
            let Some((run, ds)) = db.show_run(run_id).await? else {
                bail!("no run {run_id}; `recon runs` lists them");
            };
            let un = db.unattributed(run.run_date).await?;
            match format {
                OutputFormat::Json => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(
                            &serde_json::json!({"run": run, "discrepancies": ds, "unattributed_ledger_rows": un})
                        )?
                    )
                }
                OutputFormat::Table => {
                    print!("{}", table::show(&run, &ds));
                    if !un.is_empty() {
                        println!(
                            "\nledger rows of {} that belong to no processor's run:",
                            run.run_date
                        );
                        for u in &un {
                            println!("  {}  {}  raw: {}", u.source, u.reason, u.raw);
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Items {
            command,
            filter,
            format,
            common,
        } => items(&settings, command, filter, format, common).await,
        Command::Step {
            function,
            input,
            store,
            database_url,
            outbox,
        } => step(settings, function, &input, store, database_url, outbox).await,
        Command::Migrate { database_url } => {
            let cfg = db_config(&settings, database_url.as_deref())?;
            Store::create_database_if_missing(&cfg).await?;
            let applied = Store::new(&cfg)?.migrate().await?;
            if applied.is_empty() {
                println!("database is up to date");
            } else {
                for m in applied {
                    println!("applied {m}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `recon step`: one Lambda step on a local store (the ports a function builds, with a local directory for S3,
/// an outbox for SES and no Step Functions); prints the step's answer as JSON.
async fn step(
    settings: Settings,
    function: StepFunction,
    input: &std::path::Path,
    store: PathBuf,
    database_url: Option<String>,
    outbox: Option<PathBuf>,
) -> Result<ExitCode> {
    use recon_app::keys::Source;
    use recon_app::steps::{fetch, notify, r#match, MemoryExecutions, Ports};
    enum StepEvent {
        Fetch(Source, fetch::FetchInput),
        Match(Box<r#match::MatchInput>),
        Notify(notify::NotifyInput),
    }
    let text = if input.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the event from standard input")?
    } else {
        std::fs::read_to_string(input)
            .with_context(|| format!("reading the event {}: check the path", input.display()))?
    };
    let event: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("the event {} is not JSON", input.display()))?;
    // the event is checked before anything is opened
    let bad = |e: serde_json::Error| anyhow::anyhow!("the event does not fit the step's input: {e}");
    let fetch_event = |source: Source, event| {
        Ok::<_, anyhow::Error>(StepEvent::Fetch(
            source,
            serde_json::from_value(event).map_err(bad)?,
        ))
    };
    let event = match function {
        StepFunction::FetchStripe => fetch_event(Source::Stripe, event)?,
        StepFunction::FetchPaypal => fetch_event(Source::Paypal, event)?,
        StepFunction::FetchSquare => fetch_event(Source::Square, event)?,
        StepFunction::FetchLedger => fetch_event(Source::Ledger, event)?,
        StepFunction::Match => StepEvent::Match(Box::new(serde_json::from_value(event).map_err(bad)?)),
        StepFunction::Notify => StepEvent::Notify(serde_json::from_value(event).map_err(bad)?),
    };
    let db = match event {
        StepEvent::Fetch(..) => None,
        _ => Some(ready_store(&settings, database_url.as_deref()).await?),
    };
    let mailer = OutboxMailer {
        dir: outbox.unwrap_or_else(|| settings.outbox.clone()),
    };
    let ports = Ports::new(
        LocalStore::new(&store),
        mailer,
        MemoryExecutions::default(),
        db,
        settings,
    );
    let answer = match event {
        StepEvent::Fetch(source, input) => {
            serde_json::to_value(fetch::fetch(&ports, source, input, None).await?)?
        }
        StepEvent::Match(input) => serde_json::to_value(r#match::match_step(&ports, *input).await?)?,
        StepEvent::Notify(input) => serde_json::to_value(notify::notify(&ports, input).await?)?,
    };
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(ExitCode::SUCCESS)
}

fn print_day(day: &DaySummary, format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(day)?),
        OutputFormat::Table => print!("{}", table::day(day)),
    }
    Ok(())
}

impl ItemFilterArgs {
    fn to_filter(&self) -> ItemFilter {
        ItemFilter {
            status: self.status,
            open_only: self.status.is_none() && !self.all_statuses,
            processor: self.processor,
            category: self.category.clone(),
            min_age: self.min_age,
            assignee: self.assignee.clone(),
            ids: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.processor.is_none()
            && self.category.is_none()
            && self.min_age.is_none()
            && self.assignee.is_none()
    }
}

async fn items(
    settings: &Settings,
    command: Option<ItemsCommand>,
    filter: ItemFilterArgs,
    format: ListFormat,
    common: ItemsCommon,
) -> Result<ExitCode> {
    let db = store_from(settings, common.database_url.as_deref())?;
    let as_of = common.as_of.unwrap_or_else(|| Utc::now().date_naive());
    let (act, action) = match command {
        None => {
            let rows = app_items::list(&db, &filter.to_filter(), as_of).await?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
                ListFormat::Csv => std::io::stdout().write_all(&app_items::export_csv(&rows)?)?,
                ListFormat::Table => print!("{}", table::items(&rows)),
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(ItemsCommand::Show { id, format }) => {
            let (item, events) = app_items::show(&db, id, as_of).await?;
            match format {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"item": item, "history": events}))?
                ),
                OutputFormat::Table => print!("{}", table::item(&item, &events)),
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(ItemsCommand::Export { filter, out }) => {
            let rows = app_items::list(&db, &filter.to_filter(), as_of).await?;
            let csv = app_items::export_csv(&rows)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, csv).with_context(|| format!("writing {}", path.display()))?;
                    eprintln!("exported {} items to {}", rows.len(), path.display());
                }
                None => std::io::stdout().write_all(&csv)?,
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(ItemsCommand::Import { file, actor, dry_run }) => {
            let actor = app_items::actor(settings, actor.as_deref())?;
            let bytes = std::fs::read(&file)
                .with_context(|| format!("reading {}: check the path", file.display()))?;
            let name = file.display().to_string();
            let imported = app_items::import_csv(&db, &actor, &name, &bytes, dry_run).await?;
            eprintln!("{name}: {} rows with an action", imported.rows);
            return Ok(print_outcome(&imported.outcome, dry_run));
        }
        Some(ItemsCommand::Ack { act }) => (act, Action::parse("ack", None, None, None)),
        Some(ItemsCommand::Assign { act, to }) => {
            let a = Action::parse("assign", None, None, Some(&to));
            (act, a)
        }
        Some(ItemsCommand::Comment { act, note }) => {
            let a = Action::parse("comment", None, Some(&note), None);
            (act, a)
        }
        Some(ItemsCommand::Resolve { act, reason, note }) => {
            let a = Action::parse("resolve", Some(&reason), note.as_deref(), None);
            (act, a)
        }
        Some(ItemsCommand::Reopen { act, note }) => {
            let a = Action::parse("reopen", None, note.as_deref(), None);
            (act, a)
        }
    };
    let action = action.map_err(|e| anyhow::anyhow!(e))?;
    let actor = app_items::actor(settings, act.actor.as_deref())?;
    let targets: Vec<(i64, Option<i32>)> = if act.all_matching {
        if act.filter.is_empty() {
            bail!("--all-matching needs at least one filter (--status, --processor, --category, --min-age, --assignee)");
        }
        let mut f = act.filter.to_filter();
        // reopen acts on resolved items; every other action on the open and acknowledged ones
        if matches!(action, Action::Reopen { .. }) && act.filter.status.is_none() {
            f.status = Some(ItemStatus::Resolved);
            f.open_only = false;
        }
        let rows = app_items::list(&db, &f, as_of).await?;
        if rows.is_empty() {
            println!("no item matches: nothing to do");
            return Ok(ExitCode::SUCCESS);
        }
        let total = rows
            .iter()
            .try_fold(rust_decimal::Decimal::ZERO, |t, r| {
                t.checked_add(r.amount_at_stake)
            })
            .context("the selected amounts overflow")?;
        eprintln!("{} {} items ({} at stake)", action.name(), rows.len(), total);
        if !act.yes && !act.dry_run && !confirm()? {
            println!("nothing done");
            return Ok(ExitCode::from(1));
        }
        rows.iter().map(|r| (r.id, Some(r.version))).collect()
    } else {
        if act.ids.is_empty() {
            bail!("name the items (ids from `recon items`) or select them with --all-matching and filters");
        }
        if act.expect_version.is_some() && act.ids.len() != 1 {
            bail!("--expect-version applies to one item; name exactly one");
        }
        act.ids.iter().map(|id| (*id, act.expect_version)).collect()
    };
    let outcome = app_items::act(&db, &actor, &targets, &action, act.dry_run).await?;
    Ok(print_outcome(&outcome, act.dry_run))
}

/// Asks on the terminal; `false` unless the answer is yes.
fn confirm() -> Result<bool> {
    eprint!("proceed? [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES"))
}

/// Prints what a batch did (or, for a dry run, would do); exit 1 when anything was refused (nothing written).
fn print_outcome(outcome: &BatchOutcome, dry_run: bool) -> ExitCode {
    match outcome {
        BatchOutcome::Done(done) => {
            let verb = if dry_run { "would" } else { "did" };
            for a in done {
                if a.changed {
                    println!(
                        "item {}: {verb} {} ({} -> {}, version {})",
                        a.item_id, a.action, a.from_status, a.to_status, a.version
                    );
                } else {
                    println!("item {}: {} changes nothing (already so)", a.item_id, a.action);
                }
            }
            let changed = done.iter().filter(|a| a.changed).count();
            if dry_run {
                println!("dry run: {changed} items would change; nothing written");
            } else {
                println!("{changed} items changed");
            }
            ExitCode::SUCCESS
        }
        BatchOutcome::Refused(refused) => {
            for r in refused {
                eprintln!("refused: {r}");
            }
            eprintln!("nothing was changed: fix the refused items and run it again");
            ExitCode::from(1)
        }
    }
}
