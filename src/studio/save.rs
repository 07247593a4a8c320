//! Saving a template: checked first as the relay's reload checks it (it compiles, and the bundled
//! sample events it renders come out as messages their destination takes), so that a file the
//! relay would refuse is never written; then written; then the reload's real outcome.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use super::edit::Edit;
use crate::relay::Live;
use crate::render::{self, Situation};

/// How long Save waits for the relay to reload what it wrote (a change is read once the files
/// have been quiet for 300 ms).
const RELOAD_WAIT: Duration = Duration::from_secs(5);

/// Why the relay would refuse `edit`'s template at its next reload, if it would.
pub(super) fn problem(edit: &Edit, dir: &Path) -> Option<String> {
    let id = edit.id;
    if let Err(failure) = render::compile(id.kind, id.part, &id.name(), &edit.text) {
        return Some(failure.to_string());
    }
    for (file, event) in crate::samples::events() {
        if !id.governs(event.kind, dir) {
            continue;
        }
        let trigger = serde_json::to_value(&event.summary).unwrap_or_default();
        let texts = edit.texts(id.kind, event.kind, dir);
        for situation in Situation::all_for(&event, &trigger) {
            let rendered =
                render::render_texts(id.kind, &event, id.kind.as_str(), &texts, situation);
            if let Err(failure) = rendered {
                return Some(format!("the sample event {file} makes: {failure}"));
            }
        }
    }
    None
}

/// Writes `edit`'s template into `dir`, then waits for the reload it starts: what came of it.
pub(super) async fn write(edit: &Edit, dir: &Path, live: &Live) -> Result<Value, String> {
    let path = edit.id.path(dir);
    let mut reloads = live.reloads();
    let before = reloads.borrow_and_update().count;
    path.parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&path, &edit.text))
        .map_err(|e| format!("cannot write {}: {e}", edit.id.name()))?;
    tracing::info!(template = %path.display(), "the studio saved a template");
    let reload =
        match tokio::time::timeout(RELOAD_WAIT, reloads.wait_for(|r| r.count > before)).await {
            Ok(Ok(done)) => match &done.refused {
                None => json!({ "applied": true }),
                Some(why) => json!({ "applied": false, "why": why }),
            },
            _ => json!({ "applied": null, "why": "the relay has not reloaded it yet" }),
        };
    Ok(json!({ "saved": edit.id.name(), "reload": reload }))
}
