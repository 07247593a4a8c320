//! The template files the studio edits, named as the relay looks them up, and which of them the
//! relay uses for each event: what a file that does not exist yet starts from, and whether an
//! edited file is the one an event is rendered with.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::deliver::{DestinationKind, Part};
use crate::event::EventKind;
use crate::render;

/// One template file of the main tree: `<kind>/<stem><part suffix>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct TemplateId {
    pub kind: DestinationKind,
    /// `default` or an event kind.
    pub stem: &'static str,
    pub part: Part,
}

impl TemplateId {
    pub fn all() -> impl Iterator<Item = TemplateId> {
        DestinationKind::all().flat_map(|kind| {
            std::iter::once("default")
                .chain(EventKind::ALL.map(EventKind::as_str))
                .flat_map(move |stem| {
                    kind.facts()
                        .parts()
                        .iter()
                        .map(move |&part| TemplateId { kind, stem, part })
                })
        })
    }

    pub fn name(&self) -> String {
        format!("{}/{}{}", self.kind.as_str(), self.stem, self.part.suffix())
    }

    /// Only a name from [`TemplateId::all`]: nothing else can become a path.
    pub fn parse(name: &str) -> Option<TemplateId> {
        Self::all().find(|id| id.name() == name)
    }

    pub fn path(&self, dir: &Path) -> PathBuf {
        dir.join(self.kind.as_str())
            .join(format!("{}{}", self.stem, self.part.suffix()))
    }

    /// Whether this file, once it exists, is the one the relay renders this part of an
    /// `event_kind` event with: its own file, or `default` where the event kind has none.
    pub fn governs(&self, event_kind: EventKind, dir: &Path) -> bool {
        if self.stem == event_kind.as_str() {
            return true;
        }
        let own = TemplateId {
            stem: event_kind.as_str(),
            ..*self
        };
        self.stem == "default"
            && crate::render::file_stems(event_kind).contains(&"default")
            && !own.path(dir).is_file()
    }

    /// The file itself, or what the relay renders in its place today (for `default`, the
    /// built-in one; for an event kind, its lookup: `default`, then the built-in): what an edit
    /// of it starts from.
    pub fn text(&self, dir: &Path) -> render::Source {
        match EventKind::parse(self.stem) {
            Some(event_kind) => render::source(dir, self.kind, event_kind, self.part, None),
            None => render::source(
                dir,
                self.kind,
                EventKind::Unknown,
                self.part,
                Some(self.stem),
            ),
        }
    }

    /// `GET /api/template`: the text to edit, whether the file exists, and what it starts from.
    pub fn answer(&self, dir: &Path) -> Value {
        let source = self.text(dir);
        let own = source.file && Path::new(&source.name) == self.path(dir);
        json!({
            "id": self.name(),
            "text": source.text,
            "file": own,
            "from": shown(&source.name, dir),
        })
    }
}

/// A template as the page names it: its path in the main tree (`slack/default.hbs`), or
/// `built-in slack/default.hbs`.
pub(super) fn shown(name: &str, dir: &Path) -> String {
    if let Some(builtin) = name.strip_prefix("builtin/") {
        return format!("built-in {builtin}");
    }
    Path::new(name)
        .strip_prefix(dir)
        .map(|relative| relative.display().to_string())
        .unwrap_or_else(|_| name.to_owned())
}
