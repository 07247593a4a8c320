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
];

impl Sample {
    /// The source kind that sends it: its folder.
    pub fn kind(&self) -> SourceKind {
        let folder = self.file.split('/').next().unwrap_or_default();
        serde_json::from_value(folder.into()).expect("each samples folder is named for its kind")
    }

    /// The events this sample holds (an Alertmanager body holds one per alert).
    pub fn events(&self) -> Vec<Event> {
        Source::of_kind(self.kind())
            .events(
                crate::event::measure(self.body.as_bytes()).expect("the bundled samples measure"),
                chrono::Utc::now(),
            )
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
