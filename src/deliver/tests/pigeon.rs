//! A destination kind that exists only in the tests, to show what adding a kind takes: this
//! module, and one line in [`super::super::KINDS`]. Nothing else in the relay names it; the
//! config loader, the templates, pacing, `check`, rendering, sending and the studio find it there.

use std::sync::Mutex;

use serde::Deserialize;

use crate::deliver::escape::Escape;
use crate::deliver::{
    AnyDestination, DeliveryError, Destination, Facts, Kind, Message, Options, Outgoing, Pace,
    Part, Place, Receipt, Sent,
};
use crate::error::ConfigError;
use crate::event::Event;

/// Where a pigeon flies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PigeonConfig {
    pub loft: String,
}

pub static KIND: Kind = Kind::new::<PigeonConfig>("pigeon", &FACTS);

impl Options for PigeonConfig {
    fn build(&self, at: &Place<'_>) -> Result<Box<dyn AnyDestination>, ConfigError> {
        if self.loft.is_empty() {
            return Err(ConfigError::new(format!("{}.loft", at.key), "is empty"));
        }
        Ok(Box::new(Pigeon {
            loft: self.loft.clone(),
        }))
    }
}

/// What every pigeon carried: its loft and the message.
pub static CARRIED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

pub struct Pigeon {
    loft: String,
}

impl Destination for Pigeon {
    async fn deliver(&self, outgoing: &Outgoing<'_>) -> Result<Sent, DeliveryError> {
        let Message::Text(text) = outgoing.first()? else {
            return Err(DeliveryError::Rejected("a pigeon carries text".into()));
        };
        let mut carried = CARRIED.lock().unwrap_or_else(|e| e.into_inner());
        carried.push((self.loft.clone(), text.clone()));
        Ok(Receipt(format!("flown to {}", self.loft)).into())
    }
}

pub struct PigeonFacts;

pub static FACTS: PigeonFacts = PigeonFacts;

impl Facts for PigeonFacts {
    fn escape(&self, _: Part) -> Escape {
        Escape::Line
    }

    fn builtin(&self) -> &'static [(&'static str, &'static str)] {
        &[("default.hbs", "{{upper summary.state}}: {{summary.title}}")]
    }

    fn message(&self, texts: Vec<String>) -> Result<Message, String> {
        let [text] = <[String; 1]>::try_from(texts).map_err(|_| "one part expected".to_owned())?;
        Ok(Message::Text(text))
    }

    fn fallback(&self, event: &Event) -> Message {
        Message::Text(crate::deliver::headline(event))
    }

    /// A pigeon is slow.
    fn pace(&self) -> Pace {
        Pace::per_second(2, None)
    }
}

#[tokio::test]
async fn a_kind_added_by_its_module_and_one_line_is_configured_rendered_paced_and_sent() {
    let dir = tempfile::tempdir().unwrap();
    let config_at = |text: &str| {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        crate::config::Config::load(&path)
    };
    // Its own keys are checked as every kind's are; the shared ones are taken as for any kind.
    let wrong = config_at("[destinations.homing]\nkind = \"pigeon\"\nlofts = \"north\"\n")
        .expect_err("an unknown key");
    assert!(
        format!("{wrong:#}").contains("destinations.homing: unknown field: found `lofts`"),
        "{wrong:#}"
    );
    let config = config_at(
        "[destinations.homing]\nkind = \"pigeon\"\nloft = \"north\"\nrate_limit = \"1/m\"\n",
    )
    .unwrap();
    let relay = config.relay().unwrap();
    let target = &relay.destinations["homing"];
    assert_eq!(target.kind.as_str(), "pigeon");
    assert!(target.pace.is_some(), "paced as configured");
    // `check`'s test: every bundled sample renders with its built-in template.
    assert!(relay.problems().is_empty(), "{:?}", relay.problems());
    let (_, event) = crate::samples::events()
        .into_iter()
        .find(|(file, _)| file.ends_with("alert_trigger.json"))
        .unwrap();
    let answers = relay.send(&event, Some("homing")).await.unwrap();
    let (_, rendered, answer) = &answers[0];
    assert!(rendered.failures.is_empty());
    assert_eq!(answer.as_ref().unwrap().receipt.0, "flown to north");
    let carried = CARRIED.lock().unwrap().clone();
    assert_eq!(
        carried,
        [(
            "north".to_owned(),
            "TRIGGERED: Default Page Load Alert Rule on http://www.thousandeyes111.com".to_owned()
        )]
    );
}
