//! The `alert-relay` command: `serve` (default), `check`, `render` and `send`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use alert_relay::config::Config;
use alert_relay::deliver::{DeliveryError, Sent};
use alert_relay::event::{Event, SourceKind};
use alert_relay::logs::{LogConfig, LogFormat};
use alert_relay::noise::{NewSilence, Silence};
use alert_relay::outbox;
use alert_relay::render::{Rendered, Situation, context};
use alert_relay::samples;
use alert_relay::{Relay, run};

/// Writes a line to standard output. A reader that has gone (`alert-relay render --all | head -1`)
/// is an error that ends the command quietly (see `main`), not a panic as `println!` would.
macro_rules! out {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)?
    };
}

/// Writes a line to standard error, if it is still open.
macro_rules! note {
    ($($arg:tt)*) => {
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    };
}

/// The relay allocates many short-lived JSON values per event; mimalloc serves them with far less
/// time in the allocator than glibc's malloc (measured with `cargo bench --bench ingest`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Relays ThousandEyes alert webhooks to Slack, Teams, email and webhooks"
)]
struct Cli {
    /// The config file; relative paths in it are relative to its directory.
    #[arg(
        long,
        global = true,
        env = "ALERT_RELAY_CONFIG",
        default_value = "config.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Validate the config, compile every template and render the bundled sample events for
    /// every destination; exit 1 on any problem.
    Check {
        /// Also ask each destination that can tell whether its credentials work (Slack's
        /// `auth.test` for a bot token); sends no message.
        #[arg(long)]
        online: bool,
    },
    /// Print what each destination would receive for an event; sends nothing. Exits 1 when a
    /// template failed and the fallback is shown.
    Render {
        /// A webhook body (JSON).
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        event: Option<PathBuf>,
        /// What reads the body: a source's name in [sources], or a source kind (thousandeyes,
        /// thousandeyes-custom, alertmanager, grafana). Default: the only source, or
        /// thousandeyes.
        #[arg(long, conflicts_with = "all")]
        source: Option<String>,
        /// Only this destination (default: the ones the routes choose).
        #[arg(long)]
        to: Option<String>,
        /// Print the template context (every variable a template can use) instead.
        #[arg(long, conflicts_with = "all")]
        context: bool,
        /// Render every bundled sample event for every destination (or --to).
        #[arg(long)]
        all: bool,
    },
    /// Deliver one event now and print each destination's answer.
    Send {
        #[arg(long)]
        event: PathBuf,
        /// What reads the body, as for `render`.
        #[arg(long)]
        source: Option<String>,
        #[arg(long)]
        to: Option<String>,
    },
    /// List deliveries in the store, newest first (works while the server runs).
    Deliveries {
        /// pending, done, dead, silenced, flapped or grouped.
        #[arg(long)]
        state: Option<outbox::DeliveryState>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// List the tokens the relay's OAuth server issued, or revoke one.
    Tokens {
        #[command(subcommand)]
        action: Option<TokensAction>,
    },
    /// Hold alerts back for a while: add, list or expire silences. They are kept in the store: a
    /// running relay applies a change within storage.poll.
    Silence {
        #[command(subcommand)]
        action: SilenceAction,
    },
    /// The Slack app: `slack manifest` prints a manifest to create it from.
    Slack {
        #[command(subcommand)]
        action: SlackAction,
    },
    /// Make a delivery (or every dead one) due again now; a running server picks it up.
    Retry {
        /// The delivery id, from `deliveries`.
        #[arg(required_unless_present = "dead", conflicts_with = "dead")]
        id: Option<i64>,
        /// Every dead delivery.
        #[arg(long)]
        dead: bool,
    },
}

#[derive(Subcommand)]
enum SilenceAction {
    /// Add a silence and print its id.
    Add {
        /// field=value, field!=value, field=~regex or field!~regex, over source, kind, rule,
        /// test, type, severity, alert or label:NAME; every one given must hold.
        #[arg(long = "match", required = true)]
        matchers: Vec<String>,
        /// How long it lasts from its start: 30m, 2h, 1d.
        #[arg(long = "for")]
        duration: humantime::Duration,
        /// When it starts, RFC 3339 (default: now).
        #[arg(long)]
        starts: Option<String>,
        /// Why.
        #[arg(long)]
        comment: String,
        /// Who adds it (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// List the silences that have not ended (--all: those the store keeps).
    List {
        #[arg(long)]
        all: bool,
    },
    /// End a silence now: the triggers it held that still fire are sent.
    Expire {
        /// The silence's id, from `silence list`.
        id: String,
    },
}

#[derive(Subcommand)]
enum SlackAction {
    /// Print a Slack app manifest (JSON) for [slack_app]: paste it at api.slack.com/apps →
    /// Create New App → From an app manifest.
    Manifest {
        /// Where Slack reaches the relay, for a Request URL (https://relay.example.com).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokensAction {
    /// Refuse the token from its next use on (works while the server runs).
    Revoke {
        /// The token's id, from `tokens`.
        id: String,
    },
}

/// mimalloc keeps freed memory for a while before it gives it back to the system, so a burst of
/// large events left the relay's resident memory far above what it used (measured with
/// `tests/memory.rs`: a peak of 160 MiB for 32 connections posting 900 KB events, 100 MiB with
/// these two settings, for the same throughput). Memory is given back at once, unless
/// `MIMALLOC_PURGE_DELAY` or `MIMALLOC_ARENA_EAGER_COMMIT` say otherwise.
fn tune_allocator() {
    use libmimalloc_sys::mi_option_set;
    // `mi_option_arena_eager_commit` and `mi_option_purge_delay` in mimalloc 3's `mi_option_t`,
    // which the Rust bindings do not name (the environment variables above set the same ones).
    const OPTIONS: [(&str, i32); 2] = [
        ("MIMALLOC_ARENA_EAGER_COMMIT", 4),
        ("MIMALLOC_PURGE_DELAY", 15),
    ];
    // mimalloc asks for transparent huge pages for its arena: the resident memory then grows 2 MiB
    // at a time, and was 10 MiB higher at rest (27.7 MiB against 17.7 MiB with one destination)
    // and under load. The relay's heap is small; it does without them. Where the call fails, the
    // relay merely uses more memory.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    for (variable, option) in OPTIONS {
        if std::env::var_os(variable).is_none() {
            // SAFETY: setting an option is a plain call into the allocator, valid at any time and
            // from any thread.
            unsafe { mi_option_set(option, 0) };
        }
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli.config),
        command => {
            let _logs = alert_relay::logs::init(&LogConfig {
                level: "warn".into(),
                format: LogFormat::Text,
            });
            match command {
                Command::Serve => unreachable!("handled above"),
                Command::Check { online } => check(&cli.config, online),
                Command::Render {
                    event,
                    source,
                    to,
                    context,
                    all,
                } => render(
                    &cli.config,
                    event.as_deref().map(|path| (path, source.as_deref())),
                    to.as_deref(),
                    context,
                    all,
                ),
                Command::Send { event, source, to } => {
                    send(&cli.config, &event, source.as_deref(), to.as_deref())
                }
                Command::Deliveries { state, limit } => deliveries(&cli.config, state, limit),
                Command::Tokens { action } => tokens(&cli.config, action),
                Command::Silence { action } => silence(&cli.config, action),
                Command::Slack {
                    action: SlackAction::Manifest { url },
                } => slack_manifest(&cli.config, url.as_deref()),
                // clap makes sure that without an id, --dead was given.
                Command::Retry { id, dead: _ } => retry(&cli.config, id),
            }
        }
    };
    match result {
        Ok(code) => code,
        // The reader of standard output has gone: what it wanted, it has.
        Err(e) if closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            note!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `error` is a write to a pipe whose reader has gone.
fn closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("cannot start the async runtime")
}

fn serve(config_path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    // Held until the server has stopped: dropping it writes the last lines.
    let _logs = alert_relay::logs::init(&config.log);
    alert_relay::server::raise_open_files_limit();
    runtime()?.block_on(async {
        let listener = alert_relay::server::bind(config.server.listen)
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        run(config, listener, shutdown_signal()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

fn check(config_path: &Path, online: bool) -> anyhow::Result<ExitCode> {
    let (config, relay) = load(config_path)?;
    config.slack_app().context("invalid config")?;
    out!(
        "config {}: ok ({} destinations, {} routes)",
        config_path.display(),
        config.destinations.len(),
        config.routes.len()
    );
    let now = chrono::Utc::now();
    for window in &relay.windows {
        let utc = |at: chrono::DateTime<chrono::Utc>| at.format("%Y-%m-%d %H:%M UTC");
        match (window.open_until(now), window.next_open(now)) {
            (Some(until), _) => out!(
                "maintenance {}: open now, until {} ({})",
                window.name,
                window.local(until),
                utc(until)
            ),
            (None, Some(at)) => out!(
                "maintenance {}: opens next {} ({})",
                window.name,
                window.local(at),
                utc(at)
            ),
            (None, None) => out!("maintenance {}: never opens", window.name),
        }
    }
    let problems = relay.problems();
    for (place, failure) in &problems {
        match place.is_empty() {
            true => out!("template {failure}"),
            false => out!("{place}: template {failure}"),
        }
    }
    let samples = samples::events();
    let mut contexts = Vec::new();
    for (_, event) in &samples {
        let trigger = serde_json::to_value(&event.summary)?;
        for situation in Situation::all_for(event, &trigger) {
            for (name, target) in &relay.destinations {
                contexts.push(context(event, name, target.kind, situation));
            }
        }
    }
    for (template, variable) in relay.renderer.unknown_variables(&contexts) {
        out!("warning: template {template} uses {variable}, which no sample event provides");
    }
    out!(
        "rendered {} sample events for {} destinations ({} messages)",
        samples.len(),
        relay.destinations.len(),
        contexts.len()
    );
    let mut problems = problems.len();
    if online {
        let answers = runtime()?.block_on(async {
            let mut answers = Vec::new();
            for (name, target) in &relay.destinations {
                answers.push((name, target.destination.check_online().await));
            }
            answers
        });
        for (name, answer) in answers {
            match answer {
                Some(Ok(who)) => out!("{name}: {who}"),
                Some(Err(e)) => {
                    problems += 1;
                    out!("{name}: {e}");
                }
                None => {}
            }
        }
    }
    if problems > 0 {
        out!("{problems} problem(s)");
        return Ok(ExitCode::FAILURE);
    }
    out!("ok");
    Ok(ExitCode::SUCCESS)
}

/// The config at `config_path` and the relay it describes, for the commands that use one.
fn load(config_path: &Path) -> anyhow::Result<(Config, Relay)> {
    let config = Config::load(config_path)?;
    let relay = config.relay().context("invalid config")?;
    Ok((config, relay))
}

/// The events the body at `path` holds, read by `source` (see `Command::Render`).
fn read_events(relay: &Relay, path: &Path, source: Option<&str>) -> anyhow::Result<Vec<Event>> {
    let body = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let only = match relay.sources.iter().collect::<Vec<_>>()[..] {
        [only] => only.origin.name.as_str(),
        _ => SourceKind::Thousandeyes.as_str(),
    };
    relay
        .sources
        .read(source.unwrap_or(only), &body, chrono::Utc::now())
        .map_err(|e| match &e.reader {
            Some(reader) => anyhow::anyhow!(
                "{}: {e}; it reads as a body of the {reader} source: add --source {reader}",
                path.display()
            ),
            None => anyhow::anyhow!("{}: {e}", path.display()),
        })
}

fn render(
    config_path: &Path,
    event_path: Option<(&Path, Option<&str>)>,
    to: Option<&str>,
    show_context: bool,
    all: bool,
) -> anyhow::Result<ExitCode> {
    let (config, relay) = load(config_path)?;
    let events: Vec<(String, Event)> = match event_path {
        Some((path, source)) => read_events(&relay, path, source)?
            .into_iter()
            .map(|event| (path.display().to_string(), event))
            .collect(),
        None => samples::events()
            .into_iter()
            .map(|(file, e)| (file.to_owned(), e))
            .collect(),
    };
    if show_context {
        let (_, event) = events.first().context("the body holds no event")?;
        let targets = relay.targets(event, to).map_err(anyhow::Error::msg)?;
        let name = targets
            .first()
            .or(config.destinations.keys().next())
            .context("no destination to show the context for")?;
        let kind = config.destinations[name].kind;
        let context = context(event, name, kind, Situation::default());
        out!("{}", serde_json::to_string_pretty(&context)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = false;
    for (source, event) in &events {
        let targets = match (all, to) {
            (true, None) => config.destinations.keys().cloned().collect(),
            _ => relay.targets(event, to).map_err(anyhow::Error::msg)?,
        };
        if targets.is_empty() {
            note!(
                "{source}: no route matches this {} event",
                event.kind.as_str()
            );
        }
        for name in targets {
            let result = relay.renderer.render(event, &name);
            let kind = config.destinations[&name].kind.as_str();
            match all {
                true => out!("== {source} -> {name} ({kind}) =="),
                false => out!("== {name} ({kind}) =="),
            }
            for failure in &result.failures {
                failed = true;
                note!("warning: {source} -> {name}: template {failure}; the fallback is shown");
            }
            out!("{}", result.message);
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn send(
    config_path: &Path,
    event_path: &Path,
    source: Option<&str>,
    to: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let (_, relay) = load(config_path)?;
    let runtime = runtime()?;
    let mut failed = false;
    for event in read_events(&relay, event_path, source)? {
        let answers = runtime
            .block_on(relay.send(&event, to))
            .map_err(anyhow::Error::msg)?;
        if answers.is_empty() {
            note!("no route matches this {} event", event.kind.as_str());
        }
        failed |= print_answers(answers)?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints each destination's answer; whether any failed.
fn print_answers(
    answers: Vec<(String, Rendered, Result<Sent, DeliveryError>)>,
) -> std::io::Result<bool> {
    let mut failed = false;
    for (name, rendered, answer) in answers {
        for failure in &rendered.failures {
            note!("warning: {name}: template {failure}; the fallback was sent");
        }
        match answer {
            Ok(sent) => out!("{name}: delivered ({})", sent.receipt.0),
            Err(e) => {
                failed = true;
                let retry = if e.is_retryable() {
                    "would be retried"
                } else {
                    "permanent"
                };
                out!("{name}: failed: {e} ({retry})");
            }
        }
    }
    Ok(failed)
}

/// The store the config names: its PostgreSQL database, or its SQLite file.
fn store_location(config_path: &Path) -> anyhow::Result<outbox::Location> {
    let config = Config::load(config_path)?;
    Ok(match config.storage.postgres_url(&config.base_dir)? {
        Some(url) => outbox::Location::Postgres(url),
        None => outbox::Location::Sqlite(config.path(&config.storage.path)),
    })
}

fn deliveries(
    config_path: &Path,
    state: Option<outbox::DeliveryState>,
    limit: usize,
) -> anyhow::Result<ExitCode> {
    let location = store_location(config_path)?;
    let rows = runtime()?.block_on(outbox::list(&location, state, limit))?;
    let when = |ms| utc(ms, "%Y-%m-%d %H:%M:%S");
    out!(
        "{:>6}  {:<34}  {:<16}  {:<8}  {:>8}  {:<19}  last error",
        "id",
        "event",
        "destination",
        "state",
        "attempts",
        "next attempt (UTC)"
    );
    for row in &rows {
        let next = if row.state == outbox::DeliveryState::Pending {
            when(row.next_attempt_at)
        } else {
            "-".into()
        };
        out!(
            "{:>6}  {:<34}  {:<16}  {:<8}  {:>8}  {:<19}  {}",
            row.id,
            printable(&row.event_id),
            row.destination,
            row.state.as_str(),
            row.attempts,
            next,
            printable(row.last_error.as_deref().unwrap_or("-"))
        );
    }
    if rows.is_empty() {
        out!("(none)");
    }
    Ok(ExitCode::SUCCESS)
}

fn tokens(config_path: &Path, action: Option<TokensAction>) -> anyhow::Result<ExitCode> {
    let location = store_location(config_path)?;
    let runtime = runtime()?;
    if let Some(TokensAction::Revoke { id }) = action {
        return Ok(if runtime.block_on(outbox::revoke_token(&location, &id))? {
            out!("token {id} is revoked: it is refused from its next use on");
            ExitCode::SUCCESS
        } else {
            note!("no token {id} that is not revoked already (see `alert-relay tokens`)");
            ExitCode::FAILURE
        });
    }
    let rows = runtime.block_on(outbox::tokens(&location))?;
    let when = |ms| utc(ms, "%Y-%m-%d %H:%M");
    out!(
        "{:<32}  {:<16}  {:<16}  {:<18}  {:<16}  {:<16}  state",
        "id",
        "client",
        "approved by",
        "grant",
        "issued (UTC)",
        "expires (UTC)"
    );
    let now = outbox::now_ms();
    for row in &rows {
        let state = match row.revoked_at {
            Some(at) => format!("revoked {}", when(at)),
            None if row.expires_at <= now => "expired".into(),
            None => "active".into(),
        };
        out!(
            "{:<32}  {:<16}  {:<16}  {:<18}  {:<16}  {:<16}  {state}",
            row.id,
            printable(&row.client),
            printable(row.operator.as_deref().unwrap_or("-")),
            row.grant,
            when(row.issued_at),
            when(row.expires_at),
        );
    }
    if rows.is_empty() {
        out!("(none)");
    }
    Ok(ExitCode::SUCCESS)
}

fn slack_manifest(config_path: &Path, url: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let app = config.slack_app()?;
    let manifest = alert_relay::slack_app::manifest::manifest(app.as_ref(), url);
    out!("{}", serde_json::to_string_pretty(&manifest)?);
    Ok(ExitCode::SUCCESS)
}

fn silence(config_path: &Path, action: SilenceAction) -> anyhow::Result<ExitCode> {
    let location = store_location(config_path)?;
    let runtime = runtime()?;
    let now = outbox::now_ms();
    match action {
        SilenceAction::Add {
            matchers,
            duration,
            starts,
            comment,
            by,
        } => {
            let starts_at = match starts {
                Some(text) => chrono::DateTime::parse_from_rfc3339(&text)
                    .with_context(|| format!("--starts {text:?} is not an RFC 3339 time"))?
                    .timestamp_millis(),
                None => now,
            };
            let length = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
            let new = NewSilence {
                matchers,
                starts_at,
                ends_at: starts_at.saturating_add(length),
                comment,
                created_by: by.or_else(|| std::env::var("USER").ok()),
            };
            let silence = Silence::new(new, now).map_err(anyhow::Error::msg)?;
            runtime.block_on(outbox::add_silence(&location, silence.row()))?;
            out!(
                "silence {} added, {} until {}",
                silence.id,
                silence.state(now),
                utc(silence.ends_at, "%Y-%m-%d %H:%M:%S UTC")
            );
            Ok(ExitCode::SUCCESS)
        }
        SilenceAction::Expire { id } => Ok(
            if runtime.block_on(outbox::expire_silence(&location, &id))? {
                out!("silence {id} has ended: the triggers it held that still fire are sent");
                ExitCode::SUCCESS
            } else {
                note!("no silence {id} that has not ended (see `alert-relay silence list`)");
                ExitCode::FAILURE
            },
        ),
        SilenceAction::List { all } => {
            let rows = runtime.block_on(outbox::silences(&location))?;
            let when = |ms| utc(ms, "%Y-%m-%d %H:%M");
            out!(
                "{:<12}  {:<8}  {:<16}  {:<16}  {:<12}  matchers  (comment)",
                "id",
                "state",
                "starts (UTC)",
                "ends (UTC)",
                "by"
            );
            let mut shown = 0;
            for row in &rows {
                let silence = match Silence::from_row(row) {
                    Ok(silence) => silence,
                    Err(e) => {
                        note!("{e}");
                        continue;
                    }
                };
                if !all && silence.ends_at <= now {
                    continue;
                }
                shown += 1;
                let matchers: Vec<String> =
                    silence.matchers.iter().map(|m| m.to_string()).collect();
                out!(
                    "{:<12}  {:<8}  {:<16}  {:<16}  {:<12}  {}  ({})",
                    silence.id,
                    silence.state(now),
                    when(silence.starts_at),
                    when(silence.ends_at),
                    printable(silence.created_by.as_deref().unwrap_or("-")),
                    printable(&matchers.join(" ")),
                    printable(&silence.comment)
                );
            }
            if shown == 0 {
                out!("(none)");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Unix milliseconds as a UTC time in `format`.
fn utc(ms: i64, format: &str) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format(format).to_string())
        .unwrap_or_default()
}

/// `text` safe for a terminal: control characters (escape sequences, bells, line breaks) and the
/// bidirectional overrides that reorder what follows are shown as `\u{…}` escapes. Event ids and
/// peer answers come from outside.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            let reorders = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || reorders {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn retry(config_path: &Path, id: Option<i64>) -> anyhow::Result<ExitCode> {
    let which = id.map_or(outbox::Requeue::AllDead, outbox::Requeue::One);
    let location = store_location(config_path)?;
    let count = runtime()?.block_on(outbox::requeue(&location, which))?;
    match (which, count) {
        (outbox::Requeue::One(id), 0) => {
            note!("no delivery {id} that is done or dead");
            Ok(ExitCode::FAILURE)
        }
        _ => {
            out!(
                "{count} deliver{} due again",
                if count == 1 { "y is" } else { "ies are" }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
