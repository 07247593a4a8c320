//! Wires the stages together: [`Relay`] is everything one config describes (routes, templates,
//! destinations, credentials), [`Live`] holds the one in force and swaps it on reload, and [`run`]
//! serves, delivers and reloads until shutdown.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use governor::DefaultDirectRateLimiter;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tracing::{error, info};

use crate::auth::Auth;
use crate::config::Config;
use crate::deliver::DestinationKind;
use crate::deliver::{AnyDestination, DeliveryError, Destination, Receipt};
use crate::error::ConfigError;
use crate::event::Event;
use crate::memory::Memory;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, StoreError};
use crate::render::{Rendered, Renderer, TemplateFailure};
use crate::route::Router;
use crate::secret::Secret;
use crate::server::{self, Ingest};
use crate::worker::{self, Worker};

/// One destination as configured: where it goes and how fast.
pub struct Target {
    pub kind: DestinationKind,
    pub destination: AnyDestination,
    pub pace: Option<DefaultDirectRateLimiter>,
}

/// Everything one config describes, ready to route, render, deliver and check credentials.
pub struct Relay {
    pub ingest_path: String,
    pub router: Router,
    pub renderer: Renderer,
    pub destinations: BTreeMap<String, Target>,
    pub auth: Auth,
    /// When set, `GET /metrics` requires it as a bearer token.
    pub metrics_token: Option<Secret>,
    /// `[server.tls]`, loaded again on reload so that a renewed certificate needs no restart.
    pub tls: Option<TlsAcceptor>,
    pub timeout: Duration,
    pub max_age: Duration,
}

impl Relay {
    /// Builds everything `config` describes. Templates that do not compile are not an error here
    /// (they fall back at render time); see [`Relay::problems`].
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let http = crate::http::client(config.delivery.timeout);
        let destinations = config
            .destinations
            .iter()
            .map(|(name, destination)| {
                let target = Target {
                    kind: destination.kind(),
                    destination: AnyDestination::build(name, destination, &config.base_dir, &http)?,
                    pace: worker::limiter(destination.kind(), &destination.common()),
                };
                Ok((name.clone(), target))
            })
            .collect::<Result<_, ConfigError>>()?;
        let server = &config.server;
        let metrics_token = match (&server.metrics_token, &server.metrics_token_file) {
            (None, None) => None,
            (token, file) => Some(
                crate::secret::from_value_or_file(
                    "metrics_token",
                    token.as_ref(),
                    file.as_ref().map(|f| config.path(f)).as_deref(),
                )
                .map_err(|reason| ConfigError::new("server", reason))?,
            ),
        };
        let tls = match &server.tls {
            Some(tls) => Some(crate::tls::acceptor(
                &config.path(&tls.cert),
                &config.path(&tls.key),
            )?),
            None => None,
        };
        Ok(Self {
            auth: Auth::new(&server.auth, &config.base_dir, &http)?,
            tls,
            ingest_path: server.ingest_path.clone(),
            router: Router::new(&config.routes, config.destinations.keys())?,
            renderer: Renderer::new(config),
            destinations,
            metrics_token,
            timeout: config.delivery.timeout,
            max_age: config.delivery.max_age,
        })
    }

    /// The destinations `event` goes to: the one named by `to`, or those the routes choose.
    pub fn targets(&self, event: &Event, to: Option<&str>) -> Result<Vec<String>, String> {
        match to {
            Some(name) if self.destinations.contains_key(name) => Ok(vec![name.to_owned()]),
            Some(name) => Err(format!("no destination named {name:?}")),
            None => Ok(self.router.destinations_for(event)),
        }
    }

    /// What each target of `event` would receive.
    pub fn render(
        &self,
        event: &Event,
        to: Option<&str>,
    ) -> Result<Vec<(String, Rendered)>, String> {
        Ok(self
            .targets(event, to)?
            .into_iter()
            .map(|name| {
                let rendered = self.renderer.render(event, &name);
                (name, rendered)
            })
            .collect())
    }

    /// Delivers `event` once, now, to each target, and returns each answer.
    pub async fn send(
        &self,
        event: &Event,
        to: Option<&str>,
    ) -> Result<Vec<(String, Rendered, Result<Receipt, DeliveryError>)>, String> {
        let mut answers = Vec::new();
        for (name, rendered) in self.render(event, to)? {
            let target = &self.destinations[&name];
            let answer = tokio::time::timeout(
                self.timeout,
                target.destination.deliver(event, &rendered.message),
            )
            .await
            .unwrap_or(Err(DeliveryError::Timeout));
            answers.push((name, rendered, answer));
        }
        Ok(answers)
    }

    /// Every template problem this relay has: templates that do not compile, and bundled sample
    /// events that some destination cannot render without the fallback. Empty means `check`
    /// passes and a reload may go ahead.
    pub fn problems(&self) -> Vec<(String, TemplateFailure)> {
        let mut problems: Vec<(String, TemplateFailure)> = self
            .renderer
            .problems()
            .iter()
            .map(|p| (String::new(), p.clone()))
            .collect();
        for (file, event) in crate::samples::events() {
            for name in self.destinations.keys() {
                for failure in self.renderer.render(&event, name).failures {
                    if !self.renderer.problems().contains(&failure) {
                        problems.push((format!("sample {file} -> {name}"), failure));
                    }
                }
            }
        }
        problems
    }
}

/// The relay in force. Requests and delivery attempts take the current one and keep it for their
/// whole length, so a reload never changes an attempt already running.
pub struct Live(RwLock<Arc<Relay>>);

impl Live {
    pub fn new(relay: Relay) -> Self {
        Self(RwLock::new(Arc::new(relay)))
    }

    pub fn current(&self) -> Arc<Relay> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `relay` in force for every request and attempt that starts from now on.
    pub(crate) fn replace(&self, relay: Relay) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(relay);
    }
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
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
    let relay = Relay::new(&config)?;
    for problem in relay.renderer.problems() {
        error!(template = %problem.template, line = problem.line, error = %problem.reason, "template does not compile; the built-in one is used instead");
    }
    relay.auth.prefetch().await;
    let store_path = config.path(&config.storage.path);
    let holder = format!(
        "pid {}, listening on {}",
        std::process::id(),
        listener
            .local_addr()
            .map_or_else(|_| "?".to_owned(), |a| a.to_string())
    );
    // Held until this function returns, after the workers have stopped.
    let _lock = crate::outbox::StoreLock::acquire(&store_path, &holder)?;
    let outbox = Arc::new(Outbox::open(&store_path)?);
    let metrics = Arc::new(Metrics::default());
    let memory = Arc::new(Memory::new(config.server.max_body_bytes));
    let live = Arc::new(Live::new(relay));
    let (stop_tasks, stop) = watch::channel(false);
    let workers = Arc::new(Workers {
        live: live.clone(),
        outbox: outbox.clone(),
        metrics: metrics.clone(),
        memory: memory.clone(),
        concurrency: config.delivery.concurrency,
        grace: config.delivery.shutdown_grace,
        stop: stop.clone(),
        running: Mutex::default(),
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
    ];
    let server = &config.server;
    let ingest = Arc::new(Ingest {
        live,
        limits: server::Limits {
            max_body_bytes: server.max_body_bytes,
            idle_timeout: server.idle_timeout,
            header_timeout: server.header_timeout,
            request_timeout: server.request_timeout,
            max_connections: server.max_connections,
        },
        outbox: outbox.clone(),
        metrics,
        memory,
        closing: AtomicBool::new(false),
    });
    if let Ok(address) = listener.local_addr() {
        info!(%address, ingest_path = %server.ingest_path, destinations = config.destinations.len(), store = %store_path.display(), "listening");
    }
    server::serve(listener, ingest, shutdown).await;
    info!("stopped accepting; finishing attempts in flight");
    let _ = stop_tasks.send(true);
    for task in background {
        let _ = task.await;
    }
    workers.join().await;
    if let Err(e) = outbox.close().await {
        error!(error = %e, "cannot mark the store closed");
    }
    info!("stopped");
    Ok(())
}

/// The delivery workers, one per destination, started for destinations that appear on reload.
pub struct Workers {
    live: Arc<Live>,
    outbox: Arc<Outbox>,
    metrics: Arc<Metrics>,
    memory: Arc<Memory>,
    concurrency: usize,
    grace: Duration,
    stop: watch::Receiver<bool>,
    running: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl Workers {
    /// Starts a worker for every destination of the current relay that has none running. A
    /// worker whose destination was removed stops by itself.
    pub fn start_missing(&self) {
        let relay = self.live.current();
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for name in relay.destinations.keys() {
            if running.get(name).is_some_and(|task| !task.is_finished()) {
                continue;
            }
            let worker = Worker {
                name: name.clone(),
                live: self.live.clone(),
                outbox: self.outbox.clone(),
                metrics: self.metrics.clone(),
                memory: self.memory.clone(),
                concurrency: self.concurrency,
                health: Mutex::default(),
            };
            running.insert(
                name.clone(),
                tokio::spawn(worker.run(self.stop.clone(), self.grace)),
            );
        }
    }

    async fn join(&self) {
        let tasks: Vec<_> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, task)| task)
            .collect();
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Prunes at start and then every [`PRUNE_EVERY`].
async fn prune(outbox: Arc<Outbox>, retention: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        let before = crate::outbox::now_ms() - retention.as_millis() as i64;
        if let Err(e) = outbox.prune(before).await {
            error!(error = %e, "cannot prune the store");
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}
