//! Renders an event for one destination: finds the template for the event kind and destination
//! kind, renders it with the output's escaping, validates the result for the destination and, when
//! anything fails, falls back to the built-in template and then to a message built in code. A
//! render never fails: a broken template costs a nicer message, never the alert.
//!
//! Lookup, for each part of a message (`.hbs`; email: `.subject.hbs`, `.txt.hbs`, `.html.hbs`):
//! the destination's own `templates` tree, then the main `[templates] dir`, in each first
//! `<kind>/<event kind>` then `<kind>/default`; then the templates built into the binary.

mod bounds;
mod helpers;
mod variables;

use crate::acted::{Acted, Offer};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::deliver::{DestinationKind, Escape, Message, Part, Step};
use crate::event::{Event, EventKind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplatesConfig {
    pub dir: PathBuf,
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        Self {
            dir: "templates".into(),
        }
    }
}

/// A template that could not be compiled or rendered, or whose output was invalid.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateFailure {
    /// The template's path, or `builtin/<kind>/<file>`.
    pub template: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub reason: String,
}

impl fmt::Display for TemplateFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "{}:{line}:{column}: {}", self.template, self.reason)
            }
            (Some(line), None) => write!(f, "{}:{line}: {}", self.template, self.reason),
            _ => write!(f, "{}: {}", self.template, self.reason),
        }
    }
}

/// The result of rendering one event for one destination.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub message: Message,
    /// What failed on the way, in order; empty when the first choice worked.
    pub failures: Vec<TemplateFailure>,
}

impl Rendered {
    pub fn used_fallback(&self) -> bool {
        !self.failures.is_empty()
    }
}

/// A compiled template, or why it could not be compiled.
#[derive(Debug, Clone)]
struct Slot {
    escape: Escape,
    name: String,
    broken: Option<TemplateFailure>,
}

/// The templates of one destination for one event kind: the first choice, then the built-in.
#[derive(Debug, Clone)]
struct Choice {
    chosen: Vec<Slot>,
    builtin: Vec<Slot>,
}

#[derive(Debug)]
struct DestinationTemplates {
    kind: DestinationKind,
    by_event: HashMap<EventKind, Choice>,
}

/// Every template of every destination, compiled once at start.
pub struct Renderer {
    registries: HashMap<Escape, Handlebars<'static>>,
    destinations: HashMap<String, DestinationTemplates>,
    problems: Vec<TemplateFailure>,
}

impl Renderer {
    /// Compiles the templates of every destination: `(name, kind, its own template tree)`, with
    /// `main_dir` the main tree. Templates that do not compile are kept as problems (see
    /// [`Renderer::problems`]) and replaced by the built-in ones when used.
    pub fn new<'a>(
        main_dir: PathBuf,
        destinations: impl IntoIterator<Item = (&'a str, DestinationKind, Option<PathBuf>)>,
    ) -> Self {
        let mut registries = HashMap::new();
        for escape in Escape::ALL {
            registries.insert(escape, registry(escape));
        }
        let mut loader = Loader {
            registries,
            compiled: HashMap::new(),
            main_dir,
        };
        let destinations = destinations
            .into_iter()
            .map(|(name, kind, own_dir)| {
                let templates = loader.destination(kind, own_dir.as_deref());
                (name.to_owned(), templates)
            })
            .collect();
        let mut problems: Vec<TemplateFailure> = loader
            .compiled
            .into_values()
            .filter_map(|slot| slot.broken)
            .collect();
        problems.sort_by(|a, b| a.template.cmp(&b.template));
        Self {
            registries: loader.registries,
            destinations,
            problems,
        }
    }

    /// For each template, the root variables it reads that none of `contexts` provides.
    pub fn unknown_variables(&self, contexts: &[Value]) -> Vec<(String, String)> {
        let mut unknown = Vec::new();
        for registry in self.registries.values() {
            for (name, template) in registry.get_templates() {
                for path in variables::root_paths(template) {
                    if !contexts.iter().any(|c| variables::provided(c, &path)) {
                        unknown.push((name.clone(), path));
                    }
                }
            }
        }
        unknown.sort();
        unknown
    }

    /// Templates that failed to compile, each with its path and line.
    pub fn problems(&self) -> &[TemplateFailure] {
        &self.problems
    }

    /// Renders `event` for the destination called `destination`, as a message of its own. Never
    /// fails: see the module doc.
    pub fn render(&self, event: &Event, destination: &str) -> Rendered {
        self.render_as(event, destination, Situation::default())
    }

    /// Renders `event` for `destination` in `situation` (the update or the reply that a clear
    /// makes of its trigger's message). Never fails.
    pub fn render_as(
        &self,
        event: &Event,
        destination: &str,
        situation: Situation<'_>,
    ) -> Rendered {
        let Some(templates) = self.destinations.get(destination) else {
            // Only reachable if a caller names a destination the config does not have.
            return Rendered {
                message: crate::deliver::Facts::fallback(&crate::deliver::console::FACTS, event),
                failures: vec![TemplateFailure {
                    template: destination.to_owned(),
                    line: None,
                    column: None,
                    reason: "no such destination".into(),
                }],
            };
        };
        let kind = templates.kind;
        let choice = &templates.by_event[&event.kind];
        // Built once: handlebars would otherwise copy the whole value again at every render.
        let context = handlebars::Context::from(context(event, destination, kind, situation));
        let mut failures = Vec::new();
        let mut candidates = vec![&choice.chosen];
        if choice
            .chosen
            .iter()
            .map(|s| &s.name)
            .ne(choice.builtin.iter().map(|s| &s.name))
        {
            candidates.push(&choice.builtin);
        }
        for slots in candidates {
            match self.attempt(kind, slots, &context) {
                Ok(message) => return Rendered { message, failures },
                Err(failure) => failures.push(failure),
            }
        }
        Rendered {
            message: kind.facts().fallback(event),
            failures,
        }
    }

    fn attempt(
        &self,
        kind: DestinationKind,
        slots: &[Slot],
        context: &handlebars::Context,
    ) -> Result<Message, TemplateFailure> {
        let mut texts = Vec::with_capacity(slots.len());
        for slot in slots {
            if let Some(broken) = &slot.broken {
                return Err(broken.clone());
            }
            texts.push(bounds::render(
                &self.registries[&slot.escape],
                &slot.name,
                context,
            )?);
        }
        kind.facts()
            .message(texts)
            .map_err(|reason| TemplateFailure {
                template: slots
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" + "),
                line: None,
                column: None,
                reason: format!("rendered output is {reason}"),
            })
    }
}

/// Where a message stands in its alert's life, for the templates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Situation<'a> {
    pub step: Option<Step>,
    /// The trigger's `summary`, when the trigger was delivered there.
    pub trigger: Option<&'a Value>,
    /// What held it back until it ended (`silence:ID`, `maintenance:NAME`), for a trigger sent
    /// then.
    pub silenced: Option<&'a str>,
    /// What people did from the alert's messages, where the relay takes clicks.
    pub acted: Option<&'a Acted>,
    /// The buttons the destination's messages offer.
    pub offers: &'a [Offer],
}

impl<'a> Situation<'a> {
    pub fn new(step: Step, trigger: Option<&'a Value>) -> Self {
        Self {
            step: Some(step),
            trigger,
            ..Self::default()
        }
    }
}

impl<'a> Situation<'a> {
    /// Every situation `check` renders `event` in: a message of its own and, for a clear, the
    /// update and the reply of its trigger's message, with `trigger` standing for the trigger's
    /// summary; for a group notification, its message updated and its reply in the thread.
    pub fn all_for(event: &Event, trigger: &'a Value) -> Vec<Situation<'a>> {
        let mut all = vec![Situation::default()];
        if event.kind.phase() == Some(crate::event::Phase::Clear) {
            all.extend([Step::Update, Step::Reply].map(|step| Situation::new(step, Some(trigger))));
        }
        if event.kind == EventKind::Group {
            all.extend([Step::Update, Step::Reply].map(|step| Situation::new(step, None)));
        }
        // With buttons, acknowledged and silenced from the message.
        let acted = Situation {
            acted: Some(&SAMPLE_ACTED),
            offers: &ALL_OFFERS,
            ..Situation::default()
        };
        all.push(acted);
        all.push(Situation {
            acted: None,
            ..acted
        });
        if event.kind.phase() == Some(crate::event::Phase::Clear) {
            all.push(Situation {
                step: Some(Step::Update),
                trigger: Some(trigger),
                ..acted
            });
        }
        all
    }
}

/// Every button a message may offer, for `check`.
const ALL_OFFERS: [Offer; 2] = [Offer::Ack, Offer::Silence];

/// An alert acknowledged and silenced from its message, for `check`.
static SAMPLE_ACTED: std::sync::LazyLock<Acted> = std::sync::LazyLock::new(|| Acted {
    ack: Some(crate::acted::Ack {
        by: "ana".into(),
        user_id: "U0ANA".into(),
        at: "2026-12-06T10:04:00Z".into(),
    }),
    silence: Some(crate::acted::UserSilence {
        id: "3f9c0a1be27d".into(),
        by: "ana".into(),
        user_id: "U0ANA".into(),
        until: "2026-12-06T14:04:00Z".into(),
    }),
});

/// A Handlebars registry whose `{{value}}` escapes with `escape`, with the relay's helpers.
fn registry(escape: Escape) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.register_escape_fn(move |text| escape.apply(text));
    helpers::register(&mut registry, escape);
    registry
}

/// Everything a template can use.
pub fn context(
    event: &Event,
    destination: &str,
    kind: DestinationKind,
    situation: Situation<'_>,
) -> Value {
    json!({
        "event": {
            "id": event.id,
            "type": event.event_type,
            "kind": event.kind,
            "received_at": event.received_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        },
        "alert": event.alert(),
        "agentAlert": event.raw.get("agentAlert"),
        "raw": event.raw,
        "summary": event.summary,
        "source": {
            "name": event.source.name,
            "kind": event.source.kind.as_str(),
            "label": event.source.label(),
        },
        "destination": { "name": destination, "kind": kind.as_str() },
        "correlation": correlation(event, situation.acted),
        "thread": {
            "update": situation.step == Some(Step::Update),
            "reply": situation.step == Some(Step::Reply),
        },
        "trigger": situation.trigger,
        "silenced": situation.silenced,
        "group": event.group(),
        "acted": situation.acted,
        "actions": actions(event, destination, situation),
    })
}

/// `{key, state}` of the alert; `acknowledged` with `by` while someone has acknowledged it and
/// it fires, and `by` still once it has cleared.
fn correlation(event: &Event, acted: Option<&Acted>) -> Value {
    let Some(correlation) = event.correlation() else {
        return Value::Null;
    };
    match acted.and_then(|a| a.ack.as_ref()) {
        Some(ack) if correlation.state == crate::event::State::Triggered => json!({
            "key": correlation.key,
            "state": "acknowledged",
            "by": ack.by,
        }),
        // Cleared after an ack: who had it stays said.
        Some(ack) => json!({ "key": correlation.key, "state": correlation.state, "by": ack.by }),
        None => json!(correlation),
    }
}

/// The buttons of the message (see [`Acted::actions`]): on a firing alert's own message or its
/// group's, not on a thread reply.
fn actions(event: &Event, destination: &str, situation: Situation<'_>) -> Value {
    let firing = match event.group() {
        Some(group) => group.get("state").and_then(Value::as_str) == Some("firing"),
        None => event.summary.state == crate::event::State::Triggered,
    };
    let own_message = situation.step != Some(Step::Reply);
    let acted = situation.acted.cloned().unwrap_or_default();
    let key = event.correlation().map(|c| c.key);
    acted.actions(situation.offers, destination, key, firing && own_message)
}

/// A template as the relay finds it for one part of one event kind: the file in the main tree
/// (`<kind>/<event kind>` first, then `<kind>/default`), else the built-in.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The file's path, or `builtin/<kind>/<file>`.
    pub name: String,
    /// Whether a file holds it (otherwise it is built into the binary).
    pub file: bool,
    pub text: String,
}

/// See [`Source`]: the template a destination of `kind` without a tree of its own uses for
/// `part` of an `event_kind` event, with `main_dir` the main tree. `stem` asks for one file
/// (`default` or an event kind) rather than the one the lookup would choose.
pub fn source(
    main_dir: &Path,
    kind: DestinationKind,
    event_kind: EventKind,
    part: Part,
    stem: Option<&str>,
) -> Source {
    let stems = match stem {
        Some(stem) => vec![stem],
        None => file_stems(event_kind),
    };
    for stem in &stems {
        let path = main_dir
            .join(kind.as_str())
            .join(format!("{stem}{}", part.suffix()));
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Source {
                name: path.display().to_string(),
                file: true,
                text,
            };
        }
    }
    let builtin = kind.facts().builtin();
    let (file, text) = stems
        .iter()
        .chain(["default"].iter())
        .find_map(|stem| {
            let file = format!("{stem}{}", part.suffix());
            builtin
                .iter()
                .find(|(name, _)| *name == file)
                .map(|(_, text)| (file, *text))
        })
        .expect("every destination kind has built-in default templates");
    Source {
        name: format!("builtin/{}/{file}", kind.as_str()),
        file: false,
        text: text.to_owned(),
    }
}

/// The files of a template tree an `event_kind` event is rendered with, the first found: its
/// own, then `default`; a group's notification only with `group` (a `default` file is written
/// for one alert), else the built-in one.
pub fn file_stems(event_kind: EventKind) -> Vec<&'static str> {
    match event_kind {
        EventKind::Group => vec![event_kind.as_str()],
        _ => vec![event_kind.as_str(), "default"],
    }
}

/// Renders `event` for a destination called `destination` of `kind` from template texts given
/// here, `(name, text)` for each part of the kind in order, and checks the message as the relay
/// does before sending. Nothing is kept: the running relay's templates do not change. For the
/// template studio, which renders what is being edited.
pub fn render_texts(
    kind: DestinationKind,
    event: &Event,
    destination: &str,
    texts: &[(String, String)],
    situation: Situation<'_>,
) -> Result<Message, TemplateFailure> {
    let rendered = render_parts(kind, event, destination, texts, situation)?;
    message_of(kind, texts, rendered)
}

/// Whether `text` compiles as the template `name` for `part` of a destination of `kind`, as the
/// relay compiles its templates.
pub fn compile(
    kind: DestinationKind,
    part: Part,
    name: &str,
    text: &str,
) -> Result<(), TemplateFailure> {
    bounds::register(&mut registry(kind.facts().escape(part)), name, text)
}

/// What each of `texts` renders for `event` (see [`render_texts`]), unchecked.
pub fn render_parts(
    kind: DestinationKind,
    event: &Event,
    destination: &str,
    texts: &[(String, String)],
    situation: Situation<'_>,
) -> Result<Vec<String>, TemplateFailure> {
    let facts = kind.facts();
    let context = handlebars::Context::from(context(event, destination, kind, situation));
    let mut rendered = Vec::with_capacity(texts.len());
    for (&part, (name, text)) in facts.parts().iter().zip(texts) {
        let mut registry = registry(facts.escape(part));
        bounds::register(&mut registry, name, text)?;
        rendered.push(bounds::render(&registry, name, &context)?);
    }
    Ok(rendered)
}

/// The message the parts `rendered` from `texts` make for a destination of `kind`, or why it
/// would refuse it.
pub fn message_of(
    kind: DestinationKind,
    texts: &[(String, String)],
    rendered: Vec<String>,
) -> Result<Message, TemplateFailure> {
    kind.facts()
        .message(rendered)
        .map_err(|reason| TemplateFailure {
            template: texts
                .iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>()
                .join(" + "),
            line: None,
            column: None,
            reason: format!("rendered output is {reason}"),
        })
}

/// Finds and compiles templates, each file once.
struct Loader {
    registries: HashMap<Escape, Handlebars<'static>>,
    /// By template name (path or `builtin/…`).
    compiled: HashMap<String, Slot>,
    main_dir: PathBuf,
}

impl Loader {
    fn destination(
        &mut self,
        kind: DestinationKind,
        own_dir: Option<&Path>,
    ) -> DestinationTemplates {
        let by_event = EventKind::ALL
            .into_iter()
            .map(|event_kind| {
                let mut chosen = Vec::new();
                let mut builtin = Vec::new();
                for &part in kind.facts().parts() {
                    let fallback = self.builtin(kind, event_kind, part);
                    chosen.push(match self.file(kind, event_kind, part, own_dir) {
                        Some(slot) => slot,
                        None => fallback.clone(),
                    });
                    builtin.push(fallback);
                }
                (event_kind, Choice { chosen, builtin })
            })
            .collect();
        DestinationTemplates { kind, by_event }
    }

    fn file(
        &mut self,
        kind: DestinationKind,
        event_kind: EventKind,
        part: Part,
        own_dir: Option<&Path>,
    ) -> Option<Slot> {
        let dirs: Vec<&Path> = own_dir
            .into_iter()
            .chain([self.main_dir.as_path()])
            .collect();
        let path = dirs.iter().find_map(|dir| {
            file_stems(event_kind)
                .iter()
                .map(|stem| {
                    dir.join(kind.as_str())
                        .join(format!("{stem}{}", part.suffix()))
                })
                .find(|path| path.is_file())
        })?;
        let name = path.display().to_string();
        let source = std::fs::read_to_string(&path).map_err(|e| TemplateFailure {
            template: name.clone(),
            line: None,
            column: None,
            reason: format!("cannot read: {e}"),
        });
        Some(self.compile(name, kind.facts().escape(part), source))
    }

    fn builtin(&mut self, kind: DestinationKind, event_kind: EventKind, part: Part) -> Slot {
        let facts = kind.facts();
        let (file, source) = [event_kind.as_str(), "default"]
            .iter()
            .find_map(|stem| {
                let file = format!("{stem}{}", part.suffix());
                facts
                    .builtin()
                    .iter()
                    .find(|(name, _)| *name == file)
                    .map(|(_, source)| (file, *source))
            })
            .expect("every destination kind has built-in default templates");
        self.compile(
            format!("builtin/{}/{file}", kind.as_str()),
            facts.escape(part),
            Ok(source.to_owned()),
        )
    }

    fn compile(
        &mut self,
        name: String,
        escape: Escape,
        source: Result<String, TemplateFailure>,
    ) -> Slot {
        if let Some(slot) = self.compiled.get(&name) {
            return slot.clone();
        }
        let broken = source
            .and_then(|source| {
                let registry = self
                    .registries
                    .get_mut(&escape)
                    .expect("a registry per escape");
                bounds::register(registry, &name, &source)
            })
            .err();
        let slot = Slot {
            escape,
            name: name.clone(),
            broken,
        };
        self.compiled.insert(name, slot.clone());
        slot
    }
}
