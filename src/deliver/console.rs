//! The console: rendered text on standard output, so the relay shows what it would send with no
//! external service at all.

use std::io::Write;
use std::path::PathBuf;

use serde::Deserialize;

use super::escape::Escape;
use super::{CommonOptions, RateLimit};
use super::{DeliveryError, Destination, Facts, Message, Outgoing, Pace, Part, Receipt, Sent};
use crate::event::Event;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    pub templates: Option<PathBuf>,
    pub rate_limit: Option<RateLimit>,
    pub burst: Option<u32>,
}

impl ConsoleConfig {
    pub fn common(&self) -> CommonOptions {
        CommonOptions {
            templates: self.templates.clone(),
            rate_limit: self.rate_limit,
            burst: self.burst,
        }
    }
}

pub struct Console;

impl Console {
    pub fn new(_config: &ConsoleConfig) -> Self {
        Self
    }
}

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
        &[(
            "default.hbs",
            include_str!("../../templates/console/default.hbs"),
        )]
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
