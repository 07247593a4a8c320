//! The console: rendered text on standard output, so the relay shows what it would send with no
//! external service at all.

use std::io::Write;
use std::path::PathBuf;

use serde::Deserialize;

use super::{CommonOptions, RateLimit};
use super::{DeliveryError, Destination, Receipt};
use crate::event::Event;
use crate::render::Message;

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
    async fn deliver(&self, _event: &Event, message: &Message) -> Result<Receipt, DeliveryError> {
        let text = format!("{}\n", message.to_string().trim_end());
        // One write under the lock, so that two destinations never interleave their lines.
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .map_err(|e| DeliveryError::Io(format!("cannot write to standard output: {e}")))?;
        Ok(Receipt("written to standard output".into()))
    }
}
