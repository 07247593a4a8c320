//! Sample events bundled into the binary, one of each form the relay normalizes from every source
//! kind, so that `check` can render every template for every destination without any file beside
//! the config, and the studio can offer them.

use crate::event::{Event, Source, SourceKind};

macro_rules! sample {
    ($kind:literal, $file:literal) => {
        Sample {
            file: concat!($kind, "/", $file),
            body: include_str!(concat!("../samples/", $kind, "/", $file)),
        }
    };
}

/// One bundled body, as its source kind sends it: `samples/<kind>/<file>`.
pub struct Sample {
    /// Its path under `samples/`, which starts with the source kind that sends it.
    pub file: &'static str,
    pub body: &'static str,
}

pub const SAMPLES: &[Sample] = &[
    sample!("thousandeyes", "webhook_test.json"),
    sample!("thousandeyes", "alert_trigger.json"),
    sample!("thousandeyes", "alert_clear.json"),
    sample!("thousandeyes", "alert_clear_rule_disabled.json"),
    sample!("thousandeyes", "alert_trigger_http_many_agents.json"),
    sample!("thousandeyes", "alert_trigger_network_e2e.json"),
    sample!("thousandeyes", "agent_alert_trigger.json"),
    sample!("thousandeyes", "agent_alert_clear.json"),
    sample!("thousandeyes", "agent_alert_trigger_v2021.json"),
    sample!("alertmanager", "firing.json"),
    sample!("alertmanager", "resolved.json"),
    sample!("grafana", "firing.json"),
    sample!("group", "notification.json"),
];

impl Sample {
    /// What reads it: its folder, a source kind (or `group`, the relay's own group
    /// notifications).
    pub fn source(&self) -> &'static str {
        self.file.split('/').next().unwrap_or_default()
    }

    /// The events this sample holds (an Alertmanager body holds one per alert).
    pub fn events(&self) -> Vec<Event> {
        let measured =
            crate::event::measure(self.body.as_bytes()).expect("the bundled samples measure");
        if self.source() == crate::event::group::SOURCE {
            let raw = serde_json::from_str(self.body).expect("the group sample is an object");
            return vec![
                crate::event::group::event(raw, chrono::Utc::now())
                    .expect("the group sample reads"),
            ];
        }
        let kind: SourceKind = serde_json::from_value(self.source().into())
            .expect("each samples folder is named for its kind");
        Source::of_kind(kind)
            .events(measured, chrono::Utc::now())
            .expect("the bundled samples are valid events")
            .into_iter()
            .map(|arrival| arrival.event)
            .collect()
    }
}

/// Every event of the bundled samples, with the file it comes from.
pub fn events() -> Vec<(&'static str, Event)> {
    SAMPLES
        .iter()
        .flat_map(|sample| sample.events().into_iter().map(|e| (sample.file, e)))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_bundled_sample_parses() {
        assert!(super::events().len() > super::SAMPLES.len());
    }
}
