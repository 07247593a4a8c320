//! Wires the stages together: [`run`] for the server, and [`Relay`] for what `check`, `render`
//! and `send` do with one event.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info};

use crate::config::{Config, ConfigError};
use crate::deliver::{AnyDestination, DeliveryError, Destination, Receipt};
use crate::event::Event;
use crate::metrics::Metrics;
use crate::outbox::{Outbox, StoreError};
use crate::render::{Rendered, Renderer};
use crate::route::Router;
use crate::server::{self, Ingest};
use crate::worker::{self, Worker};

/// The configured relay: routes, templates and destinations, ready to render and deliver.
pub struct Relay {
    /// The one HTTP client: destinations, and the JWKS fetch.
    pub http: reqwest::Client,
    pub router: Arc<Router>,
    pub renderer: Arc<Renderer>,
    pub destinations: BTreeMap<String, Arc<AnyDestination>>,
    timeout: std::time::Duration,
}

impl Relay {
    /// Builds everything `config` describes. Templates that do not compile are not an error here
    /// (they fall back at render time); see [`Renderer::problems`].
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let http = crate::deliver::http_client(config.delivery.timeout);
        let destinations = config
            .destinations
            .iter()
            .map(|(name, destination)| {
                AnyDestination::build(name, destination, &config.base_dir, &http)
                    .map(|d| (name.clone(), Arc::new(d)))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            http,
            router: Arc::new(Router::new(&config.routes, config.destinations.keys())?),
            renderer: Arc::new(Renderer::new(config)),
            destinations,
            timeout: config.delivery.timeout,
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
            let destination = &self.destinations[&name];
            let answer =
                tokio::time::timeout(self.timeout, destination.deliver(event, &rendered.message))
                    .await
                    .unwrap_or(Err(DeliveryError::Timeout));
            answers.push((name, rendered, answer));
        }
        Ok(answers)
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
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Runs the relay on `listener` until `shutdown` completes: serves the ingest endpoint and
/// delivers with one worker per destination; then stops accepting (503), lets attempts in flight
/// finish within `delivery.shutdown_grace`, and returns. What is left waits in the store.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let relay = Relay::new(&config)?;
    for problem in relay.renderer.problems() {
        error!(template = %problem.template, line = problem.line, error = %problem.reason, "template does not compile; the built-in one is used instead");
    }
    let store_path = config.path(&config.storage.path);
    let outbox = Arc::new(Outbox::open(&store_path, relay.destinations.keys())?);
    let metrics = Arc::new(Metrics::default());
    let (stop_workers, stop) = watch::channel(false);
    let mut tasks: Vec<_> = relay
        .destinations
        .iter()
        .map(|(name, destination)| {
            let options = config.destinations[name].common();
            let worker = Worker {
                name: name.clone(),
                destination: destination.clone(),
                renderer: relay.renderer.clone(),
                outbox: outbox.clone(),
                metrics: metrics.clone(),
                timeout: config.delivery.timeout,
                max_age: config.delivery.max_age,
                concurrency: config.delivery.concurrency,
                pace: worker::limiter(config.destinations[name].kind(), &options),
            };
            tokio::spawn(worker.run(stop.clone(), config.delivery.shutdown_grace))
        })
        .collect();
    tasks.push(tokio::spawn(prune(
        outbox.clone(),
        config.storage.retention,
        stop.clone(),
    )));
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
        Some(tls) => Some(server::tls_acceptor(
            &config.path(&tls.cert),
            &config.path(&tls.key),
        )?),
        None => None,
    };
    let auth = crate::auth::Auth::new(&server.auth, &config.base_dir, &relay.http)?;
    auth.prefetch().await;
    let ingest = Arc::new(Ingest {
        ingest_path: server.ingest_path.clone(),
        limits: server::Limits {
            max_body_bytes: server.max_body_bytes,
            header_timeout: server.header_timeout,
            request_timeout: server.request_timeout,
            max_connections: server.max_connections,
        },
        auth,
        metrics_token,
        tls,
        router: relay.router.clone(),
        outbox: outbox.clone(),
        metrics,
        closing: AtomicBool::new(false),
    });
    if let Ok(address) = listener.local_addr() {
        info!(%address, ingest_path = %config.server.ingest_path, destinations = relay.destinations.len(), store = %store_path.display(), "listening");
    }
    server::serve(listener, ingest, shutdown).await;
    info!("stopped accepting; finishing attempts in flight");
    let _ = stop_workers.send(true);
    for task in tasks {
        let _ = task.await;
    }
    info!("stopped");
    Ok(())
}

/// Prunes at start and then every [`PRUNE_EVERY`].
async fn prune(
    outbox: Arc<Outbox>,
    retention: std::time::Duration,
    mut stop: watch::Receiver<bool>,
) {
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
