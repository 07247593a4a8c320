//! Hot reload: SIGHUP, or a change to the config file or to any file under a template directory,
//! loads the config and templates again. The new relay replaces the old one only if it builds and
//! passes what `check` checks (every template compiles, every bundled sample renders for every
//! destination); otherwise the reason is logged, counted, and the old one keeps serving.
//! Attempts in flight keep the relay they started with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::metrics::{Metrics, ReloadOutcome};
use crate::relay::Live;
use crate::worker::Pool;

/// Editors and `cat >` write a file in several steps: a reload waits until the watched files have
/// been quiet this long, so that it reads them whole.
const SETTLE: Duration = Duration::from_millis(300);

/// Settings read once at start: the listener, the store and the workers' shape.
#[derive(Debug, Clone, PartialEq)]
struct StartOnly(Vec<(&'static str, String)>);

impl StartOnly {
    fn of(config: &Config) -> Self {
        let s = &config.server;
        let d = &config.delivery;
        Self(vec![
            ("server.listen", s.listen.to_string()),
            ("server.max_body_bytes", s.max_body_bytes.to_string()),
            ("server.idle_timeout", format!("{:?}", s.idle_timeout)),
            ("server.header_timeout", format!("{:?}", s.header_timeout)),
            ("server.request_timeout", format!("{:?}", s.request_timeout)),
            ("server.max_connections", s.max_connections.to_string()),
            (
                "storage.path",
                config.path(&config.storage.path).display().to_string(),
            ),
            (
                "storage.retention",
                format!("{:?}", config.storage.retention),
            ),
            ("storage.poll", format!("{:?}", config.storage.poll)),
            ("delivery.concurrency", d.concurrency.to_string()),
            ("delivery.backoff_min", format!("{:?}", d.backoff_min)),
            ("delivery.backoff_max", format!("{:?}", d.backoff_max)),
            ("delivery.shutdown_grace", format!("{:?}", d.shutdown_grace)),
            ("delivery.niceness", d.niceness.to_string()),
            ("log", format!("{:?}", config.log)),
            ("studio", studio(&config.studio)),
        ])
    }
}

/// What of `[studio]` a restart applies (its users by name: their passwords are secrets).
fn studio(studio: &crate::studio::StudioConfig) -> String {
    let users: Vec<&str> = studio.auth.iter().map(|u| u.username.as_str()).collect();
    format!(
        "enabled {}, listen {}, write {}, hosts {:?}, users {users:?}",
        studio.enabled, studio.listen, studio.write, studio.hosts
    )
}

pub struct Reloader {
    config_path: PathBuf,
    start_only: StartOnly,
    /// The template directories of the config in force, watched recursively.
    template_dirs: Vec<PathBuf>,
    live: Arc<Live>,
    metrics: Arc<Metrics>,
    workers: Arc<Pool>,
}

impl Reloader {
    pub fn new(
        config: &Config,
        live: Arc<Live>,
        metrics: Arc<Metrics>,
        workers: Arc<Pool>,
    ) -> Self {
        Self {
            config_path: config.file.clone(),
            start_only: StartOnly::of(config),
            template_dirs: template_dirs(config),
            live,
            metrics,
            workers,
        }
    }

    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let (changed, mut changes) = mpsc::channel::<()>(1);
        let mut watched = self.watched_dirs();
        let mut watcher = self.watch(changed.clone());
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let hangup_received = async {
                #[cfg(unix)]
                if let Some(hangup) = hangup.as_mut() {
                    hangup.recv().await;
                    return;
                }
                std::future::pending::<()>().await
            };
            let file_changed = tokio::select! {
                stopping = stop.wait_for(|stop| *stop) => {
                    drop(stopping);
                    return;
                }
                Some(()) = changes.recv() => true,
                () = hangup_received => false,
            };
            let reason = if file_changed {
                // Every further change starts the wait again.
                while let Ok(Some(())) = tokio::time::timeout(SETTLE, changes.recv()).await {}
                "a watched file changed"
            } else {
                "SIGHUP"
            };
            // The template directories may have moved with the config, or one has appeared
            // (`mkdir templates`): watched anew, and read once more, for what was written in
            // them before they were watched.
            self.reload(reason).await;
            if self.watched_dirs() != watched {
                watched = self.watched_dirs();
                drop(watcher);
                watcher = self.watch(changed.clone());
                let _ = changed.try_send(());
            }
        }
    }

    /// Loads, checks and installs a new relay, or says why not.
    async fn reload(&mut self, reason: &str) {
        let attempt = async {
            let config = Config::load(&self.config_path).map_err(|e| format!("{e:#}"))?;
            let relay = config.relay().map_err(|e| e.to_string())?;
            let problems = relay.problems();
            if let Some((place, failure)) = problems.first() {
                return Err(format!(
                    "{} template problem(s), first: {place}{}template {failure}",
                    problems.len(),
                    if place.is_empty() { "" } else { ": " }
                ));
            }
            Ok((config, relay))
        };
        match attempt.await {
            Ok((config, relay)) => {
                relay.auth.prefetch().await;
                let start_only = StartOnly::of(&config);
                for ((key, old), (_, new)) in self.start_only.0.iter().zip(&start_only.0) {
                    if old != new {
                        warn!(
                            key,
                            "this setting changed in the config; it takes effect at the next restart"
                        );
                    }
                }
                self.template_dirs = template_dirs(&config);
                self.live.replace(relay);
                self.workers.start_missing();
                self.metrics.reload(ReloadOutcome::Success);
                info!(
                    reason,
                    destinations = config.destinations.len(),
                    "reloaded the config and templates"
                );
            }
            Err(why) => {
                self.metrics.reload(ReloadOutcome::Failure);
                error!(reason, error = %why, "reload refused; the previous config and templates keep serving");
                self.live.refused(why);
            }
        }
    }

    /// The template directories that exist, which the watcher watches.
    fn watched_dirs(&self) -> Vec<PathBuf> {
        (self.template_dirs.iter())
            .map(|d| absolute(d))
            .filter(|d| d.is_dir())
            .collect()
    }

    /// Watches the config file (through its directory, since editors replace files) and every
    /// template directory; each change sends on `changed`.
    fn watch(&self, changed: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
        let config_file = absolute(&self.config_path);
        // Changes under a directory that does not exist yet are seen as its creation, in the
        // config's directory.
        let dirs: Vec<PathBuf> = self.template_dirs.iter().map(|d| absolute(d)).collect();
        let relevant = {
            let (config_file, dirs) = (config_file.clone(), dirs.clone());
            move |path: &Path| path == config_file || dirs.iter().any(|d| path.starts_with(d))
        };
        let handler = move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            // Reading templates during a reload must not trigger another one.
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            if event.paths.iter().any(|p| relevant(p)) {
                let _ = changed.try_send(());
            }
        };
        let mut watcher = match notify::recommended_watcher(handler) {
            Ok(watcher) => watcher,
            Err(e) => {
                warn!(error = %e, "cannot watch files; reload with SIGHUP");
                return None;
            }
        };
        if let Some(dir) = config_file.parent()
            && let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive)
        {
            warn!(dir = %dir.display(), error = %e, "cannot watch the config file; reload with SIGHUP");
        }
        for dir in self.watched_dirs() {
            if let Err(e) = watcher.watch(&dir, RecursiveMode::Recursive) {
                warn!(dir = %dir.display(), error = %e, "cannot watch a template directory");
            }
        }
        Some(watcher)
    }
}

fn template_dirs(config: &Config) -> Vec<PathBuf> {
    std::iter::once(config.path(&config.templates.dir))
        .chain(
            config
                .destinations
                .values()
                .filter_map(|d| d.common.templates.as_ref().map(|dir| config.path(dir))),
        )
        .collect()
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| std::path::absolute(path).unwrap_or(path.to_path_buf()))
}
