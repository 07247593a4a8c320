//! ThousandEyes sample events bundled into the binary, so that `check` can render every template
//! for every destination without any file beside the config.

macro_rules! sample {
    ($file:literal) => {
        (
            $file,
            include_str!(concat!("../samples/thousandeyes/", $file)),
        )
    };
}

/// `(file name, body)`: one of each event form the relay normalizes.
pub const SAMPLES: &[(&str, &str)] = &[
    sample!("webhook_test.json"),
    sample!("alert_trigger.json"),
    sample!("alert_clear.json"),
    sample!("alert_clear_rule_disabled.json"),
    sample!("alert_trigger_http_many_agents.json"),
    sample!("alert_trigger_network_e2e.json"),
    sample!("agent_alert_trigger.json"),
    sample!("agent_alert_clear.json"),
    sample!("agent_alert_trigger_v2021.json"),
];

/// The bundled samples, parsed, with their file names.
pub fn events() -> Vec<(&'static str, crate::event::Event)> {
    SAMPLES
        .iter()
        .map(|(file, body)| {
            let event = crate::event::Event::parse(body.as_bytes(), chrono::Utc::now())
                .expect("the bundled samples are valid events");
            (*file, event)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_bundled_sample_parses() {
        assert_eq!(super::events().len(), super::SAMPLES.len());
    }
}
