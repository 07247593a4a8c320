//! Prometheus counters, served as text at `GET /metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub kind: String,
    /// `accepted`, `duplicate`, or `rejected_<reason>`.
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub destination: String,
    /// `delivered`, `retry` or `dead`.
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FallbackLabels {
    pub destination: String,
    pub template: String,
}

pub struct Metrics {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("alert_relay");
        let events = Family::<EventLabels, Counter>::default();
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let fallbacks = Family::<FallbackLabels, Counter>::default();
        registry.register(
            "events",
            "Events received, by kind and outcome",
            events.clone(),
        );
        registry.register(
            "delivery_attempts",
            "Delivery attempts, by destination and outcome",
            deliveries.clone(),
        );
        registry.register(
            "render_fallbacks",
            "Messages sent with a fallback because a template failed, by destination and template",
            fallbacks.clone(),
        );
        Self {
            registry,
            events,
            deliveries,
            fallbacks,
        }
    }
}

impl Metrics {
    pub fn event(&self, kind: &str, outcome: &str) {
        self.events
            .get_or_create(&EventLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn delivery(&self, destination: &str, outcome: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                destination: destination.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    pub fn fallback(&self, destination: &str, template: &str) {
        self.fallbacks
            .get_or_create(&FallbackLabels {
                destination: destination.to_owned(),
                template: template.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
