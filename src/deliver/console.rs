//! The console: rendered text on standard output, so the relay shows what it would send with no
//! external service at all.

use std::io::Write;

use serde::Deserialize;

use super::escape::Escape;
use super::{
    AnyDestination, DeliveryError, Destination, Facts, Kind, Message, Options, Outgoing, Pace,
    Part, Place, Receipt, Sent,
};
use crate::error::ConfigError;
use crate::event::Event;

/// The console has no keys of its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {}

pub static KIND: Kind = Kind::new::<ConsoleConfig>("console", &FACTS);

impl Options for ConsoleConfig {
    fn build(&self, _: &Place<'_>) -> Result<Box<dyn AnyDestination>, ConfigError> {
        Ok(Box::new(Console))
    }
}

pub struct Console;

impl Destination for Console {
    async fn deliver(&self, outgoing: &Outgoing<'_>) -> Result<Sent, DeliveryError> {
        let text = format!("{}\n", outgoing.first()?.to_string().trim_end());
        // One write under the lock, so that two destinations never interleave their lines.
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| DeliveryError::Io(format!("cannot write to standard output: {e}")))?;
        Ok(Receipt("written to standard output".into()).into())
    }
}

/// The console: plain text as rendered, unpaced.
pub struct ConsoleFacts;

pub static FACTS: ConsoleFacts = ConsoleFacts;

impl Facts for ConsoleFacts {
    fn escape(&self, _: Part) -> Escape {
        Escape::Raw
    }

    fn builtin(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "default.hbs",
                include_str!("../../templates/console/default.hbs"),
            ),
            (
                "group.hbs",
                include_str!("../../templates/console/group.hbs"),
            ),
        ]
    }

    fn message(&self, texts: Vec<String>) -> Result<Message, String> {
        let [text] = <[String; 1]>::try_from(texts).map_err(|_| "one part expected".to_owned())?;
        Ok(Message::Text(text))
    }

    fn fallback(&self, event: &Event) -> Message {
        let link = event.summary.link.as_deref().unwrap_or("");
        Message::Text(format!("{}\n{link}", super::headline(event)))
    }

    fn pace(&self) -> Pace {
        Pace::UNLIMITED
    }
}
