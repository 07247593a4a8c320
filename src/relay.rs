//! Wires the stages together: [`run`] for the server, and [`Relay`] for what `check`, `render`
//! and `send` do with one event.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info};

use crate::config::{Config, ConfigError};
use crate::deliver::{AnyDestination, DeliveryError, Destination, Receipt};
use crate::event::Event;
use crate::metrics::Metrics;
use crate::outbox::{self, Outbox};
use crate::render::{Rendered, Renderer};
use crate::route::Router;
use crate::server::{self, Ingest};
use crate::worker::Worker;

/// The configured relay: routes, templates and destinations, ready to render and deliver.
pub struct Relay {
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

/// Runs the relay on `listener` until `shutdown` completes: serves the ingest endpoint, delivers
/// with one worker per destination, then stops accepting and lets attempts in flight finish.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ConfigError> {
    let relay = Relay::new(&config)?;
    for problem in relay.renderer.problems() {
        error!(template = %problem.template, line = problem.line, error = %problem.reason, "template does not compile; the built-in one is used instead");
    }
    let metrics = Arc::new(Metrics::default());
    let outbox = Arc::new(Outbox::new(
        relay.destinations.keys(),
        outbox::DEFAULT_CAPACITY,
    ));
    let (stop_workers, stop) = watch::channel(false);
    let workers: Vec<_> = relay
        .destinations
        .iter()
        .map(|(name, destination)| {
            let worker = Worker {
                name: name.clone(),
                destination: destination.clone(),
                renderer: relay.renderer.clone(),
                outbox: outbox.clone(),
                metrics: metrics.clone(),
                timeout: config.delivery.timeout,
                max_age: config.delivery.max_age,
            };
            tokio::spawn(worker.run(stop.clone()))
        })
        .collect();
    let ingest = Arc::new(Ingest {
        ingest_path: config.server.ingest_path.clone(),
        max_body_bytes: config.server.max_body_bytes,
        auth: crate::auth::Auth::new(&config.server.auth, &config.base_dir)?,
        router: relay.router.clone(),
        outbox: outbox.clone(),
        metrics,
    });
    if let Ok(address) = listener.local_addr() {
        info!(%address, ingest_path = %config.server.ingest_path, destinations = relay.destinations.len(), "listening");
    }
    server::serve(listener, ingest, shutdown).await;
    info!("stopped accepting; finishing attempts in flight");
    let _ = stop_workers.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    let left = outbox.waiting();
    if left > 0 {
        error!(
            left,
            "deliveries were still waiting at shutdown and are lost (the outbox is in memory)"
        );
    }
    Ok(())
}
