//! Prometheus metrics, served as text at `GET /metrics`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label values written as the enum's `as_str`.
macro_rules! label_value {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
                std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
    };
}

/// What became of a request to the ingest path.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum EventOutcome {
    Accepted,
    /// Accepted, but no route matched: it goes nowhere.
    Unrouted,
    Duplicate,
    RejectedInvalid,
    RejectedContentType,
    RejectedTooLarge,
    RejectedAuth,
    RejectedUnavailable,
}

label_value!(EventOutcome {
    Accepted => "accepted",
    Unrouted => "unrouted",
    Duplicate => "duplicate",
    RejectedInvalid => "rejected_invalid",
    RejectedContentType => "rejected_content_type",
    RejectedTooLarge => "rejected_too_large",
    RejectedAuth => "rejected_auth",
    RejectedUnavailable => "rejected_unavailable",
});

/// How one delivery attempt ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed, and will be tried again.
    Retry,
    /// Failed for good.
    Dead,
}

label_value!(AttemptOutcome {
    Delivered => "delivered",
    Retry => "retry",
    Dead => "dead",
});

/// How a reload ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum ReloadOutcome {
    Success,
    Failure,
}

label_value!(ReloadOutcome {
    Success => "success",
    Failure => "failure",
});

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// The `[sources]` name of the path it was posted to.
    pub source: String,
    /// The event kind, or `none` when the body was refused before it was read as an event.
    pub kind: String,
    pub outcome: EventOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub destination: String,
    pub outcome: AttemptOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DestinationLabels {
    pub destination: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    pub destination: String,
    pub template: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub outcome: ReloadOutcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SilencedLabels {
    /// `silence` or `maintenance`.
    pub by: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// `ack`, `unack`, `silence`, `unsilence`, or `other` (a link button).
    pub action: String,
    /// `done`, `duplicate` (another relay or an earlier delivery of the click had it),
    /// `refused` (a user not in `allowed_users`), `ignored`, `failed`.
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
}

pub struct Metrics {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    /// Every attempt: `delivered`, `retry` or `dead`.
    attempts: Family<OutcomeLabels, Counter>,
    /// Final outcomes: `delivered` or `dead`.
    deliveries: Family<OutcomeLabels, Counter>,
    latency: Family<DestinationLabels, Histogram>,
    fallbacks: Family<FallbackLabels, Counter>,
    pending: Family<DestinationLabels, Gauge>,
    dead: Family<DestinationLabels, Gauge>,
    reloads: Family<ReloadLabels, Counter>,
    silenced: Family<SilencedLabels, Counter>,
    silences_active: Gauge,
    held: Counter,
    flapped: Counter,
    group_notifications: Counter,
    groups_open: Gauge,
    slack_actions: Family<ActionLabels, Counter>,
    slack_socket_connected: Gauge,
    slack_signatures_refused: Counter,
}

/// Accept-to-delivered latency buckets: 10 ms to about 1.5 h, each twice the one before.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 20))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("alert_relay");
        let metrics = Self {
            events: Family::default(),
            attempts: Family::default(),
            deliveries: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            fallbacks: Family::default(),
            pending: Family::default(),
            dead: Family::default(),
            reloads: Family::default(),
            silenced: Family::default(),
            silences_active: Gauge::default(),
            held: Counter::default(),
            flapped: Counter::default(),
            group_notifications: Counter::default(),
            groups_open: Gauge::default(),
            slack_actions: Family::default(),
            slack_socket_connected: Gauge::default(),
            slack_signatures_refused: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events",
            "Events received, by kind and outcome",
            metrics.events.clone(),
        );
        registry.register(
            "delivery_attempts",
            "Delivery attempts, by destination and outcome (delivered, retry, dead)",
            metrics.attempts.clone(),
        );
        registry.register(
            "deliveries",
            "Deliveries finished, by destination and outcome (delivered, dead)",
            metrics.deliveries.clone(),
        );
        registry.register(
            "delivery_latency_seconds",
            "Time from accepting an event to its delivery, by destination",
            metrics.latency.clone(),
        );
        registry.register(
            "render_fallbacks",
            "Messages sent with a fallback because a template failed, by destination and template",
            metrics.fallbacks.clone(),
        );
        registry.register(
            "deliveries_pending",
            "Deliveries waiting in the store, by destination",
            metrics.pending.clone(),
        );
        registry.register(
            "deliveries_dead",
            "Dead deliveries kept in the store, by destination",
            metrics.dead.clone(),
        );
        registry.register(
            "config_reloads",
            "Config and template reloads, by outcome",
            metrics.reloads.clone(),
        );
        registry.register(
            "events_silenced",
            "Events a silence or a maintenance window matched as they arrived, by what (silence, maintenance)",
            metrics.silenced.clone(),
        );
        registry.register(
            "silences_active",
            "Silences in force",
            metrics.silences_active.clone(),
        );
        registry.register(
            "events_held",
            "Triggers held by their route's hold before they are sent",
            metrics.held.clone(),
        );
        registry.register(
            "events_flapped",
            "Clears that came within their trigger's hold: neither was sent",
            metrics.flapped.clone(),
        );
        registry.register(
            "group_notifications",
            "Group notifications made (each one delivery)",
            metrics.group_notifications.clone(),
        );
        registry.register(
            "groups_open",
            "Groups with an alert firing or a notification to come",
            metrics.groups_open.clone(),
        );
        registry.register(
            "slack_actions",
            "Clicks on the buttons of Slack messages, by action and outcome",
            metrics.slack_actions.clone(),
        );
        registry.register(
            "slack_socket_connected",
            "1 while the Socket Mode connection to Slack is open",
            metrics.slack_socket_connected.clone(),
        );
        registry.register(
            "slack_signatures_refused",
            "Requests to the Slack Request URL refused for their signature or timestamp",
            metrics.slack_signatures_refused.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .set(1);
        registry.register("build_info", "The running version", build);
        Self {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    pub fn event(&self, source: &str, kind: &str, outcome: EventOutcome) {
        self.events
            .get_or_create(&EventLabels {
                source: source.to_owned(),
                kind: kind.to_owned(),
                outcome,
            })
            .inc();
    }

    /// One attempt ended with `outcome`; `delivered` and `dead` also end the delivery, and a
    /// delivered one records its latency since the event was accepted.
    pub fn attempt(
        &self,
        destination: &str,
        outcome: AttemptOutcome,
        since_accepted: std::time::Duration,
    ) {
        let labels = OutcomeLabels {
            destination: destination.to_owned(),
            outcome,
        };
        self.attempts.get_or_create(&labels).inc();
        if outcome != AttemptOutcome::Retry {
            self.deliveries.get_or_create(&labels).inc();
        }
        if outcome == AttemptOutcome::Delivered {
            self.latency
                .get_or_create(&DestinationLabels {
                    destination: destination.to_owned(),
                })
                .observe(since_accepted.as_secs_f64());
        }
    }

    pub fn fallback(&self, destination: &str, template: &str) {
        self.fallbacks
            .get_or_create(&FallbackLabels {
                destination: destination.to_owned(),
                template: template.to_owned(),
            })
            .inc();
    }

    pub fn reload(&self, outcome: ReloadOutcome) {
        self.reloads.get_or_create(&ReloadLabels { outcome }).inc();
    }

    /// An event arrived that `by` (`silence:ID`, `maintenance:NAME`) holds back.
    pub fn silenced(&self, by: &str) {
        let by = by.split(':').next().unwrap_or(by).to_owned();
        self.silenced.get_or_create(&SilencedLabels { by }).inc();
    }

    /// A trigger arrived that its route holds.
    pub fn held(&self) {
        self.held.inc();
    }

    /// A clear arrived within its trigger's hold.
    pub fn flapped(&self) {
        self.flapped.inc();
    }

    /// `made` group notifications were made.
    pub fn group_notifications(&self, made: usize) {
        self.group_notifications.inc_by(made as u64);
    }

    /// Sets how many silences are in force (read at scrape time).
    pub fn set_silences_active(&self, active: usize) {
        self.silences_active.set(active as i64);
    }

    /// A click on a Slack message's button was handled with `outcome`.
    pub fn slack_action(&self, action: &str, outcome: &str) {
        let labels = ActionLabels {
            action: action.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.slack_actions.get_or_create(&labels).inc();
    }

    pub fn slack_socket_connected(&self, connected: bool) {
        self.slack_socket_connected.set(i64::from(connected));
    }

    pub fn slack_signature_refused(&self) {
        self.slack_signatures_refused.inc();
    }

    /// Sets how many groups are open (read at scrape time).
    pub fn set_groups_open(&self, open: i64) {
        self.groups_open.set(open);
    }

    /// Sets the pending and dead gauges from `(destination, pending, dead)` counts, read from the
    /// store at scrape time, for every destination configured.
    pub fn set_backlog(&self, counts: impl IntoIterator<Item = (String, i64, i64)>) {
        self.pending.clear();
        self.dead.clear();
        for (destination, pending, dead) in counts {
            let labels = DestinationLabels { destination };
            self.pending.get_or_create(&labels).set(pending);
            self.dead.get_or_create(&labels).set(dead);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
