//! What a template may do, so that no template can take the relay down. Handlebars has no limit
//! of its own on how deep partials go: a partial that includes itself, directly or through
//! another, overflows the stack and ends the process. So a template's partials are its own (inline
//! partials of the same file, `{{#*inline "name"}}`), named as written, and none includes itself;
//! a template that breaks this does not compile, with the line of the partial that breaks it. And
//! what a template writes is bounded ([`MAX_OUTPUT_BYTES`]): nested loops over a large body stop
//! there with an error instead of filling memory.

use std::collections::{BTreeMap, BTreeSet};

use handlebars::template::{DecoratorTemplate, Parameter, Template, TemplateElement};
use handlebars::{Context, Handlebars};

use super::TemplateFailure;

/// The most one part of a message may be once rendered: far above what any destination takes
/// (Teams 28 KB, a Slack message 40,000 characters), and room for a webhook body that carries an
/// event of `server.max_body_bytes` as it came.
pub const MAX_OUTPUT_BYTES: usize = 8 * 1024 * 1024;

/// Compiles `text` as the template `name` into `registry`, refusing what [`partial_problem`]
/// finds; nothing is registered when it fails.
pub fn register(
    registry: &mut Handlebars<'static>,
    name: &str,
    text: &str,
) -> Result<(), TemplateFailure> {
    registry.register_template_string(name, text).map_err(|e| {
        let (at, reason) = explain(text, &e);
        TemplateFailure {
            template: name.to_owned(),
            line: at.map(|(line, _)| line),
            column: at.map(|(_, column)| column),
            reason,
        }
    })?;
    let problem = registry.get_template(name).and_then(partial_problem);
    if let Some((at, reason)) = problem {
        registry.unregister_template(name);
        return Err(TemplateFailure {
            template: name.to_owned(),
            line: at.map(|(line, _)| line),
            column: at.map(|(_, column)| column),
            reason,
        });
    }
    Ok(())
}

/// Where and why `text` does not compile, said for its author: a block opened and never closed
/// is pointed at where it opens, and the parser's grammar words become what to write.
fn explain(text: &str, error: &handlebars::TemplateError) -> (Option<(usize, usize)>, String) {
    use handlebars::TemplateErrorReason::InvalidSyntax;
    if let Some((at, reason)) = unbalanced_block(text) {
        return (Some(at), reason);
    }
    let at = error.pos();
    let reason = match error.reason() {
        InvalidSyntax(expected) if expected.contains("trailing_tilde") => {
            // Pointed at the `{{` that is not closed, not where the parser gave up.
            let opened = at.and_then(|(line, column)| {
                let line_text = text.lines().nth(line.checked_sub(1)?)?;
                let before: String = line_text.chars().take(column.saturating_sub(1)).collect();
                Some((line, before.rfind("{{")? + 1))
            });
            return (
                opened.or(at),
                "this {{ is not closed: write }} after the expression".to_owned(),
            );
        }
        InvalidSyntax(expected) if expected.contains("partial_identifier") => {
            "a partial needs its name: {{> name}}".to_owned()
        }
        InvalidSyntax(expected) if expected.starts_with("expected identifier") => {
            "an expression is empty: write a name between {{ and }}, such as {{summary.title}}"
                .to_owned()
        }
        InvalidSyntax(_) => "Handlebars cannot read this: write {{name}}, {{helper argument}}, \
             or a block {{#name …}}…{{/name}}"
            .to_owned(),
        other => other.to_string(),
    };
    (at, reason)
}

/// The first block of `text` opened and not closed (where it opens), or closed by another name
/// (where it closes); comments and raw `{{{…}}}` are passed over.
fn unbalanced_block(text: &str) -> Option<((usize, usize), String)> {
    let position = |offset: usize| {
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    };
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut rest = 0;
    while let Some(found) = text[rest..].find("{{") {
        let start = rest + found;
        let (close, tag) = if text[start..].starts_with("{{!--") {
            ("--}}", "")
        } else if text[start..].starts_with("{{{") {
            ("}}}", "")
        } else {
            ("}}", &text[start + 2..])
        };
        let Some(length) = text[start..].find(close) else {
            break;
        };
        rest = start + length + close.len();
        let tag = tag.get(..length.saturating_sub(2)).unwrap_or("");
        let tag = tag.trim_start_matches('~').trim_start();
        let name = |sigil: &str| -> Option<String> {
            let after = tag
                .strip_prefix(sigil)?
                .trim_start_matches(['>', '*'])
                .trim_start();
            let name: String = after
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '}' && *c != '~')
                .collect();
            (!name.is_empty()).then_some(name)
        };
        if let Some(name) = name("#").or_else(|| name("^")) {
            open.push((name, start));
        } else if let Some(name) = name("/") {
            match open.pop() {
                Some((opened, _)) if opened == name => {}
                Some((opened, at)) => {
                    let (line, _) = position(at);
                    return Some((
                        position(start),
                        format!(
                            "{{{{/{name}}}}} closes {{{{#{opened}}}}}, which was opened on line {line}: close it with {{{{/{opened}}}}} first"
                        ),
                    ));
                }
                None => {
                    return Some((
                        position(start),
                        format!("{{{{/{name}}}}} closes a block that was never opened"),
                    ));
                }
            }
        }
    }
    let (name, at) = open.pop()?;
    Some((
        position(at),
        format!(
            "{{{{#{name}}}}} is opened here and never closed: add {{{{/{name}}}}} where it ends"
        ),
    ))
}

/// Renders the registered template `name` with `context`, at most [`MAX_OUTPUT_BYTES`] of it.
pub fn render(
    registry: &Handlebars<'static>,
    name: &str,
    context: &Context,
) -> Result<String, TemplateFailure> {
    let mut output = Capped(Vec::new());
    registry
        .render_with_context_to_write(name, context, &mut output)
        .map_err(|e| TemplateFailure {
            template: name.to_owned(),
            line: e.line_no,
            column: e.column_no,
            reason: match output.0.len() >= MAX_OUTPUT_BYTES {
                true => format!("writes more than {MAX_OUTPUT_BYTES} bytes"),
                false => e.reason().to_string(),
            },
        })?;
    // Handlebars writes only whole strings.
    String::from_utf8(output.0).map_err(|_| TemplateFailure {
        template: name.to_owned(),
        line: None,
        column: None,
        reason: "wrote text that is not UTF-8".into(),
    })
}

/// A buffer that refuses to grow past [`MAX_OUTPUT_BYTES`].
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + bytes.len() > MAX_OUTPUT_BYTES {
            self.0.resize(MAX_OUTPUT_BYTES, 0);
            return Err(std::io::Error::other("the template's output is too large"));
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where (line, column) and why `template` may not be rendered: a partial that is not one of its
/// own inline partials, a partial named by an expression, or inline partials that include
/// themselves.
pub fn partial_problem(template: &Template) -> Option<(Option<(usize, usize)>, String)> {
    let mut inline: BTreeMap<String, &Template> = BTreeMap::new();
    let mut uses: Vec<Use<'_>> = Vec::new();
    scan(template, None, &mut inline, &mut uses);
    let mut calls: BTreeMap<Option<&str>, BTreeSet<&str>> = BTreeMap::new();
    for used in &uses {
        match &used.partial {
            Err(reason) => return Some((used.at, reason.clone())),
            Ok(name) if *name == "@partial-block" => {}
            Ok(name) if !inline.contains_key(*name) => {
                return Some((
                    used.at,
                    format!(
                        "the partial {name:?} is not defined in this file: a template's partials are its own {{{{#*inline \"{name}\"}}}} blocks"
                    ),
                ));
            }
            Ok(name) => {
                calls.entry(used.inside).or_default().insert(name);
            }
        }
    }
    // A partial that can reach itself again never ends.
    for start in inline.keys() {
        let mut seen = BTreeSet::new();
        let mut next: Vec<&str> = calls
            .get(&Some(start.as_str()))
            .map(|c| c.iter().copied().collect())
            .unwrap_or_default();
        while let Some(name) = next.pop() {
            if name == start {
                let at = uses
                    .iter()
                    .find(|u| u.inside == Some(start.as_str()))
                    .and_then(|u| u.at);
                return Some((
                    at,
                    format!("the partial {start:?} includes itself, which would never end"),
                ));
            }
            if seen.insert(name) {
                next.extend(calls.get(&Some(name)).into_iter().flatten().copied());
            }
        }
    }
    None
}

/// A partial used somewhere: in which inline partial (`None`: the template's own body), where,
/// and its name (or why it has none that can be checked).
struct Use<'a> {
    inside: Option<&'a str>,
    at: Option<(usize, usize)>,
    partial: Result<&'a str, String>,
}

fn scan<'a>(
    template: &'a Template,
    inside: Option<&'a str>,
    inline: &mut BTreeMap<String, &'a Template>,
    uses: &mut Vec<Use<'a>>,
) {
    for (index, element) in template.elements.iter().enumerate() {
        let at = template.mapping.get(index).map(|m| (m.0, m.1));
        match element {
            TemplateElement::DecoratorBlock(decorator) if is_inline(decorator) => {
                if let (Some(name), Some(body)) =
                    (literal(decorator.params.first()), &decorator.template)
                {
                    inline.insert(name.to_owned(), body);
                    scan(body, Some(name), inline, uses);
                }
            }
            TemplateElement::PartialExpression(partial)
            | TemplateElement::PartialBlock(partial) => {
                uses.push(Use {
                    inside,
                    at,
                    partial: literal(Some(&partial.name)).ok_or_else(|| {
                        "a partial must be named as written, not by an expression".to_owned()
                    }),
                });
                if let Some(body) = &partial.template {
                    scan(body, inside, inline, uses);
                }
            }
            TemplateElement::HelperBlock(helper) => {
                for body in [&helper.template, &helper.inverse].into_iter().flatten() {
                    scan(body, inside, inline, uses);
                }
            }
            TemplateElement::DecoratorBlock(decorator) => {
                if let Some(body) = &decorator.template {
                    scan(body, inside, inline, uses);
                }
            }
            _ => {}
        }
    }
}

fn is_inline(decorator: &DecoratorTemplate) -> bool {
    matches!(&decorator.name, Parameter::Name(name) if name == "inline")
}

/// A name written out: `{{> name}}` or `{{> "name"}}`.
fn literal(parameter: Option<&Parameter>) -> Option<&str> {
    match parameter? {
        Parameter::Name(name) => Some(name),
        Parameter::Literal(serde_json::Value::String(name)) => Some(name),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> Option<String> {
        partial_problem(&Template::compile(text).unwrap()).map(|(_, reason)| reason)
    }

    #[test]
    fn partials_are_the_files_own_and_never_include_themselves() {
        let fine =
            "{{#*inline \"row\"}}<b>{{name}}</b>{{/inline}}{{#each items}}{{> row}}{{/each}}";
        assert_eq!(problem(fine), None);
        let layout = "{{#*inline \"box\"}}[{{> @partial-block}}]{{/inline}}{{#> box}}x{{/box}}";
        assert_eq!(problem(layout), None);
        for (text, says) in [
            (
                "{{#*inline \"p\"}}{{> p}}{{/inline}}{{> p}}",
                "includes itself",
            ),
            (
                "{{#*inline \"a\"}}{{#if x}}{{> b}}{{/if}}{{/inline}}{{#*inline \"b\"}}{{> a}}{{/inline}}{{> a}}",
                "includes itself",
            ),
            ("{{> slack/default.hbs}}", "not defined in this file"),
        ] {
            let reason = problem(text).unwrap_or_default();
            assert!(reason.contains(says), "{text}: {reason:?}");
        }
    }

    fn compile_error(text: &str) -> TemplateFailure {
        register(&mut Handlebars::new(), "t", text).unwrap_err()
    }

    #[test]
    fn errors_say_what_to_write_and_point_where_it_starts() {
        let unclosed = compile_error("{{#if summary.title}}\nline 2\nline 3\n");
        assert_eq!((unclosed.line, unclosed.column), (Some(1), Some(1)));
        assert!(
            unclosed
                .reason
                .contains("{{#if}} is opened here and never closed"),
            "{unclosed}"
        );
        let crossed = compile_error("{{#if a}}\n{{#each b}}\n{{/if}}\n{{/each}}");
        assert_eq!(crossed.line, Some(3));
        assert!(
            crossed
                .reason
                .contains("{{/if}} closes {{#each}}, which was opened on line 2"),
            "{crossed}"
        );
        let open = compile_error("{\"text\": \"{{summary.rule\"\n}");
        assert_eq!((open.line, open.column), (Some(1), Some(11)));
        assert!(open.reason.contains("is not closed"), "{open}");
        let empty = compile_error("a {{ }} b");
        assert!(empty.reason.contains("an expression is empty"), "{empty}");
        assert!(
            !empty.reason.contains("identifier"),
            "no grammar words: {empty}"
        );
        // Comments and raw blocks do not count.
        assert!(
            register(
                &mut Handlebars::new(),
                "t",
                "{{!-- {{#if --}}{{{raw}}}{{#each x}}{{/each}}"
            )
            .is_ok()
        );
    }

    #[test]
    fn output_is_bounded() {
        let mut registry = Handlebars::new();
        register(
            &mut registry,
            "big",
            "{{#each rows}}{{#each ../rows}}{{../../pad}}{{/each}}{{/each}}",
        )
        .unwrap();
        let rows: Vec<u32> = (0..300).collect();
        let data = serde_json::json!({ "rows": rows, "pad": "x".repeat(100) });
        let failure = render(&registry, "big", &Context::wraps(&data).unwrap()).unwrap_err();
        assert!(failure.reason.contains("more than"), "{failure}");
        // A self-including partial is refused when it is compiled, so it is never rendered.
        let refused = register(
            &mut registry,
            "loop",
            "line 1\n{{#*inline \"p\"}}{{> p}}{{/inline}}{{> p}}",
        )
        .unwrap_err();
        assert_eq!(refused.line, Some(2), "{refused}");
        assert!(registry.get_template("loop").is_none());
    }
}
