//! The relay's state: [`Relay`] is everything one config describes (routes, templates,
//! destinations, credentials), and [`Live`] holds the one in force and swaps it on reload. The
//! server, the workers and the reloader read it; it reads none of them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::DefaultDirectRateLimiter;
use tokio_rustls::TlsAcceptor;

use crate::auth::Auth;
use crate::deliver::{AnyDestination, DeliveryError, DestinationKind, Outgoing, Sent, Step};
use crate::event::{Event, Sources};
use crate::noise::Window;
use crate::render::{Rendered, Renderer, Situation, TemplateFailure};
use crate::route::Router;
use crate::secret::Secret;

/// One destination as configured: where it goes and how fast.
pub struct Target {
    pub kind: DestinationKind,
    pub destination: Box<dyn AnyDestination>,
    pub pace: Option<DefaultDirectRateLimiter>,
}

impl Target {
    /// Takes a message's turn in the destination's pace (`rate_limit`, `burst`), as a delivery
    /// does, waiting at most `at_most` for it; else how long until a message may go.
    pub async fn take_turn(&self, at_most: Duration) -> Result<(), Duration> {
        use governor::clock::{Clock, DefaultClock};
        let Some(pace) = &self.pace else {
            return Ok(());
        };
        if let Err(not_until) = pace.check() {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            if wait > at_most {
                return Err(wait);
            }
            pace.until_ready().await;
        }
        Ok(())
    }
}

/// Everything one config describes, ready to route, render, deliver and check credentials.
pub struct Relay {
    /// Who posts where, and how their bodies read.
    pub sources: Sources,
    pub router: Router,
    pub renderer: Renderer,
    /// The main template tree (`[templates] dir`), where the studio saves.
    pub templates_dir: PathBuf,
    /// `[[maintenance]]`.
    pub windows: Vec<Window>,
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
    /// What `[[maintenance]]` windows open at `now` (unix ms) hold deliveries as.
    /// Whether any destination's messages offer buttons (`actions`): then what was done from
    /// them is read for every message of an alert.
    pub fn takes_actions(&self) -> bool {
        (self.destinations.values()).any(|target| !target.destination.offers().is_empty())
    }

    pub fn open_windows(&self, now: i64) -> Vec<String> {
        let at = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default();
        (self.windows.iter())
            .filter(|w| w.is_open(at))
            .map(Window::silencer)
            .collect()
    }

    /// The destinations `event` goes to: the one named by `to`, or those the routes choose.
    pub fn targets(&self, event: &Event, to: Option<&str>) -> Result<Vec<String>, String> {
        match to {
            Some(name) if self.destinations.contains_key(name) => Ok(vec![name.to_owned()]),
            Some(name) => {
                let names: Vec<&str> = self.destinations.keys().map(String::as_str).collect();
                Err(format!(
                    "no destination named {name:?}; the config has: {}",
                    names.join(", ")
                ))
            }
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
    ) -> Result<Vec<(String, Rendered, Result<Sent, DeliveryError>)>, String> {
        let mut answers = Vec::new();
        for (name, rendered) in self.render(event, to)? {
            let target = &self.destinations[&name];
            let answer = tokio::time::timeout(
                self.timeout,
                target
                    .destination
                    .deliver(&Outgoing::new(event, rendered.message.clone())),
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
            let trigger = serde_json::to_value(&event.summary).unwrap_or_default();
            for situation in Situation::all_for(&event, &trigger) {
                let label = match situation.step {
                    Some(Step::Update) => " (as the update of its trigger)",
                    Some(Step::Reply) => " (as the reply to its trigger)",
                    Some(Step::New) | None => "",
                };
                for name in self.destinations.keys() {
                    for failure in self.renderer.render_as(&event, name, situation).failures {
                        if !self.renderer.problems().contains(&failure)
                            && !problems.iter().any(|(_, known)| *known == failure)
                        {
                            problems.push((format!("sample {file}{label} -> {name}"), failure));
                        }
                    }
                }
            }
        }
        problems
    }
}

/// The relay in force. Requests and delivery attempts take the current one and keep it for their
/// whole length, so a reload never changes an attempt already running.
pub struct Live {
    relay: RwLock<Arc<Relay>>,
    /// How the last reload went, and how many there were: so that the studio can say what came
    /// of a template it saved.
    reloads: tokio::sync::watch::Sender<Reloads>,
}

/// The reloads so far and the last one's outcome.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reloads {
    pub count: u64,
    /// Why the last one was refused; `None` when it was applied (or there was none).
    pub refused: Option<String>,
}

impl Live {
    pub fn new(relay: Relay) -> Self {
        Self {
            relay: RwLock::new(Arc::new(relay)),
            reloads: tokio::sync::watch::Sender::default(),
        }
    }

    pub fn current(&self) -> Arc<Relay> {
        self.relay.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `relay` in force for every request and attempt that starts from now on.
    pub(crate) fn replace(&self, relay: Relay) {
        *self.relay.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(relay);
        self.noted(None);
    }

    /// Notes that a reload was refused, and why.
    pub(crate) fn refused(&self, why: String) {
        self.noted(Some(why));
    }

    fn noted(&self, refused: Option<String>) {
        self.reloads.send_modify(|reloads| {
            reloads.count += 1;
            reloads.refused = refused;
        });
    }

    /// The reloads so far, and each one to come.
    pub fn reloads(&self) -> tokio::sync::watch::Receiver<Reloads> {
        self.reloads.subscribe()
    }
}
