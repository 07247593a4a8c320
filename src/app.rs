//! Start-up: opens the store, puts the relay in force, and runs the server, one worker per
//! destination, the reloader and the pruning until shutdown. Everything else is wired here and
//! nothing imports it back.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info};

use crate::config::Config;
use crate::error::ConfigError;
use crate::memory::Memory;
use crate::metrics::Metrics;
use crate::noise::Silences;
use crate::outbox::{Outbox, StoreError};
use crate::relay::Live;
use crate::server::{self, Ingest};
use crate::studio::Studio;
use crate::worker::{DeliveryRuntime, Pool};

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the delivery threads: {0}")]
    Threads(std::io::Error),
}

/// How often delivered and dead deliveries older than `storage.retention` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Runs the relay on `listener` until `shutdown` completes: serves the ingest endpoint, delivers
/// with one worker per destination, reloads on SIGHUP or when the config or a template changes;
/// then stops accepting (503), lets attempts in flight finish within
/// `delivery.shutdown_grace`, and returns. What is left waits in the store.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let relay = config.relay()?;
    for problem in relay.renderer.problems() {
        error!(template = %problem.template, line = problem.line, error = %problem.reason, "template does not compile; the built-in one is used instead");
    }
    relay.auth.prefetch().await;
    let (outbox, _lock, store) = match config.storage.postgres_url(&config.base_dir)? {
        Some(url) => {
            // Long enough for an attempt and its outcome; short enough that a dead replica's
            // deliveries move to another within about a minute.
            let lease = config.delivery.timeout + Duration::from_secs(30);
            let outbox = Outbox::connect(&url, lease).await?;
            (outbox, None, "PostgreSQL (storage.url)".to_owned())
        }
        None => {
            let store_path = config.path(&config.storage.path);
            let holder = format!(
                "pid {}, listening on {}",
                std::process::id(),
                listener
                    .local_addr()
                    .map_or_else(|_| "?".to_owned(), |a| a.to_string())
            );
            // Held until this function returns, after the workers have stopped.
            let lock = crate::outbox::StoreLock::acquire(&store_path, &holder)?;
            let outbox = Outbox::open(&store_path)?;
            (outbox, Some(lock), store_path.display().to_string())
        }
    };
    let outbox = Arc::new(outbox);
    let metrics = Arc::new(Metrics::default());
    let memory = Arc::new(Memory::new(config.server.max_body_bytes));
    let live = Arc::new(Live::new(relay));
    let silences = Arc::new(Silences::default());
    silences.refresh(&outbox).await?;
    let (stop_tasks, stop) = watch::channel(false);
    // Dropped last, when this function returns: after the workers have stopped.
    let delivery = DeliveryRuntime::start(config.delivery.niceness).map_err(StartError::Threads)?;
    let workers = Arc::new(Pool {
        runtime: delivery.handle(),
        live: live.clone(),
        outbox: outbox.clone(),
        metrics: metrics.clone(),
        memory: memory.clone(),
        concurrency: config.delivery.concurrency,
        backoff: config.delivery.backoff(),
        poll: config.storage.poll,
        grace: config.delivery.shutdown_grace,
        stop: stop.clone(),
        running: Mutex::default(),
        started_at: crate::outbox::now_ms(),
    });
    workers.start_missing();
    let background = [
        tokio::spawn(prune(
            outbox.clone(),
            config.storage.retention,
            stop.clone(),
        )),
        tokio::spawn(
            crate::reload::Reloader::new(&config, live.clone(), metrics.clone(), workers.clone())
                .run(stop.clone()),
        ),
        tokio::spawn(crate::noise::run(
            outbox.clone(),
            metrics.clone(),
            silences.clone(),
            {
                let live = live.clone();
                move |now| live.current().open_windows(now)
            },
            config.storage.poll,
            stop.clone(),
        )),
    ];
    // Clicks on the buttons of Slack messages: by Socket Mode, or at a Request URL here.
    let slack_clicks = match config.slack_app()? {
        Some(app) => Some(Arc::new(crate::slack_app::click::Clicks {
            app,
            live: live.clone(),
            outbox: outbox.clone(),
            silences: silences.clone(),
            metrics: metrics.clone(),
            http: crate::http::client(config.delivery.timeout),
        })),
        None => None,
    };
    let socket = slack_clicks
        .as_ref()
        .and_then(|clicks| match &clicks.app.receiver {
            crate::slack_app::Receiver::Socket { app_token, api_url } => {
                Some(tokio::spawn(crate::slack_app::socket::run(
                    clicks.clone(),
                    app_token.clone(),
                    api_url.clone(),
                    stop.clone(),
                )))
            }
            crate::slack_app::Receiver::RequestUrl { .. } => None,
        });
    let studio = match config.studio.enabled {
        true => {
            let listener = TcpListener::bind(config.studio.listen).await.map_err(|e| {
                ConfigError::new(
                    "studio.listen",
                    format!("cannot listen on {}: {e}", config.studio.listen),
                )
            })?;
            let studio = Studio::new(
                &config.studio,
                &config.base_dir,
                live.clone(),
                outbox.clone(),
                silences.clone(),
                memory.clone(),
            )?;
            if let Ok(address) = listener.local_addr() {
                info!(url = %format!("http://{address}/"), write = config.studio.write, "template studio");
            }
            let mut stop = stop.clone();
            Some(tokio::spawn(server::serve(
                listener,
                Studio::limits(config.server.limits()),
                Arc::new(studio),
                async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                },
            )))
        }
        false => None,
    };
    let server = &config.server;
    let ingest = Arc::new(Ingest {
        live,
        limits: server.limits(),
        outbox: outbox.clone(),
        metrics,
        memory,
        silences,
        slack_clicks: slack_clicks.filter(|c| c.app.request_path().is_some()),
        closing: AtomicBool::new(false),
    });
    if let Ok(address) = listener.local_addr() {
        let paths: Vec<String> = (ingest.live.current().sources.iter())
            .map(|s| format!("{}={}", s.origin.name, s.path))
            .collect();
        info!(%address, sources = %paths.join(","), destinations = config.destinations.len(), store = %store, "listening");
    }
    let closing = ingest.clone();
    server::serve(listener, server.limits(), ingest, async move {
        shutdown.await;
        // New posts on connections already open get 503, so that senders post them again later.
        closing.closing.store(true, Ordering::SeqCst);
    })
    .await;
    info!("stopped accepting; finishing attempts in flight");
    let _ = stop_tasks.send(true);
    for task in background.into_iter().chain(studio).chain(socket) {
        let _ = task.await;
    }
    workers.join().await;
    if let Err(e) = outbox.close().await {
        error!(error = %e, "cannot mark the store closed");
    }
    info!("stopped");
    Ok(())
}

/// Prunes at start and then every [`PRUNE_EVERY`].
async fn prune(outbox: Arc<Outbox>, retention: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        let before = crate::outbox::now_ms() - retention.as_millis() as i64;
        match outbox.prune(before).await {
            Ok(0) => {}
            Ok(rows) => info!(
                rows,
                "pruned the store of what is older than storage.retention"
            ),
            Err(e) => error!(error = %e, "cannot prune the store"),
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}
