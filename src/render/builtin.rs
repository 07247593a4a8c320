//! The templates built into the binary: the shipped `templates/` tree, used when no file exists
//! and as the fallback when a user template fails.

const BUILTIN: &[(&str, &str)] = &[
    (
        "slack/default.hbs",
        include_str!("../../templates/slack/default.hbs"),
    ),
    (
        "teams/default.hbs",
        include_str!("../../templates/teams/default.hbs"),
    ),
    (
        "email/default.subject.hbs",
        include_str!("../../templates/email/default.subject.hbs"),
    ),
    (
        "email/default.txt.hbs",
        include_str!("../../templates/email/default.txt.hbs"),
    ),
    (
        "email/default.html.hbs",
        include_str!("../../templates/email/default.html.hbs"),
    ),
    (
        "webhook/default.hbs",
        include_str!("../../templates/webhook/default.hbs"),
    ),
    (
        "console/default.hbs",
        include_str!("../../templates/console/default.hbs"),
    ),
];

/// The built-in template at `<kind>/<file>`, if there is one.
pub fn get(path: &str) -> Option<&'static str> {
    BUILTIN
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, source)| *source)
}
