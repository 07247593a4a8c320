//! Template helpers: `json`, `url`, `date`, `truncate`, `default`, `join`, `concat`, `upper`,
//! `lower`, `take`, `minus` (Handlebars itself brings `eq`, `ne`, `gt`, `lt`, `and`, `or`, `not`,
//! `len`). Helpers that return a value are escaped like any `{{value}}`; `json` and `url` write
//! their own, already safe, output.

use chrono::{DateTime, Utc};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, ScopedJson,
};
use serde_json::Value;

use crate::deliver::Escape;

/// Registers every helper; `escape` is the output of the registry, which `url` follows.
pub fn register(registry: &mut Handlebars<'static>, escape: Escape) {
    registry.register_helper("json", Box::new(json));
    registry.register_helper("url", Box::new(UrlHelper(escape)));
    let value_helpers: [(&str, ValueFn); 10] = [
        ("date", date),
        ("truncate", truncate),
        ("default", default),
        ("join", join),
        ("concat", concat),
        ("upper", |args| {
            Ok(Value::from(text(arg(args, 0)).to_uppercase()))
        }),
        ("lower", |args| {
            Ok(Value::from(text(arg(args, 0)).to_lowercase()))
        }),
        ("take", take),
        ("chunks", chunks),
        ("minus", minus),
    ];
    for (name, f) in value_helpers {
        registry.register_helper(name, Box::new(ValueHelper(name, f)));
    }
}

/// Takes its arguments by reference: `take alert.agents 10` must not copy every agent first.
type ValueFn = fn(&[&Value]) -> Result<Value, String>;

/// A helper computed from its arguments alone; the result is escaped by the output.
struct ValueHelper(&'static str, ValueFn);

impl HelperDef for ValueHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let args: Vec<&Value> = h.params().iter().map(|p| p.value()).collect();
        (self.1)(&args)
            .map(ScopedJson::Derived)
            .map_err(|reason| RenderErrorReason::Other(format!("{}: {reason}", self.0)).into())
    }
}

fn arg<'a>(args: &[&'a Value], i: usize) -> &'a Value {
    args.get(i).copied().unwrap_or(&Value::Null)
}

/// A value as text: strings as they are, null as nothing, anything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn count(value: &Value, helper_arg: &str) -> Result<usize, String> {
    value
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("{helper_arg} must be a whole number, not {value}"))
}

/// `{{json value}}`: the value as a JSON literal (`"text"`, `3`, `{…}`).
fn json(
    h: &Helper,
    _: &Handlebars,
    _: &Context,
    _: &mut RenderContext,
    out: &mut dyn Output,
) -> HelperResult {
    let value = h.param(0).map(|p| p.value()).unwrap_or(&Value::Null);
    out.write(&value.to_string())?;
    Ok(())
}

/// `{{url value}}`: the value if it is an http(s) URL, escaped for the output but never given
/// Slack's `&amp;` treatment; anything else writes nothing.
struct UrlHelper(Escape);

impl HelperDef for UrlHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        if let Some(link) = h.param(0).and_then(|p| p.value().as_str())
            && crate::event::is_http_url(link)
        {
            out.write(&self.0.apply_to_url(link))?;
        }
        Ok(())
    }
}

/// `{{date value [format] [zone]}}`: an RFC 3339 text, ThousandEyes date or epoch seconds, shown
/// with a chrono `format` (default `%Y-%m-%d %H:%M:%S %Z`) in an IANA `zone` (default UTC).
/// A missing or unreadable date writes nothing.
fn date(args: &[&Value]) -> Result<Value, String> {
    let Some(when): Option<DateTime<Utc>> = crate::event::parse_date(arg(args, 0)) else {
        return Ok(Value::from(""));
    };
    let format = arg(args, 1).as_str().unwrap_or("%Y-%m-%d %H:%M:%S %Z");
    let zone: chrono_tz::Tz = match arg(args, 2).as_str() {
        None => chrono_tz::UTC,
        Some(name) => name
            .parse()
            .map_err(|_| format!("unknown time zone {name:?}"))?,
    };
    let mut out = String::new();
    use std::fmt::Write;
    write!(out, "{}", when.with_timezone(&zone).format(format))
        .map_err(|_| format!("invalid date format {format:?}"))?;
    Ok(Value::from(out))
}

/// `{{truncate value n}}`: at most `n` characters, ending in `…` when cut.
fn truncate(args: &[&Value]) -> Result<Value, String> {
    let value = text(arg(args, 0));
    let max = count(arg(args, 1), "the length")?;
    if value.chars().count() <= max {
        return Ok(Value::from(value));
    }
    let mut cut: String = value.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    Ok(Value::from(cut))
}

/// `{{default value fallback}}`: `value` unless it is missing, null, false or empty.
fn default(args: &[&Value]) -> Result<Value, String> {
    let value = arg(args, 0);
    let empty = match value {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    Ok(if empty {
        arg(args, 1).clone()
    } else {
        value.clone()
    })
}

/// `{{join list separator}}`: the items of a list as text, separated (default `", "`).
fn join(args: &[&Value]) -> Result<Value, String> {
    let separator = arg(args, 1).as_str().unwrap_or(", ");
    let items = match arg(args, 0) {
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>(),
        Value::Null => Vec::new(),
        other => vec![text(other)],
    };
    Ok(Value::from(items.join(separator)))
}

/// `{{concat a b …}}`: the arguments as one text.
fn concat(args: &[&Value]) -> Result<Value, String> {
    Ok(Value::from(
        args.iter().map(|v| text(v)).collect::<String>(),
    ))
}

/// `{{#each (take list n)}}`: the first `n` items of a list.
fn take(args: &[&Value]) -> Result<Value, String> {
    let n = count(arg(args, 1), "the count")?;
    Ok(match arg(args, 0) {
        Value::Array(items) => Value::from(items.iter().take(n).cloned().collect::<Vec<_>>()),
        _ => Value::Array(Vec::new()),
    })
}

/// `{{#each (chunks list n)}}`: the list in lists of `n` items (the last may hold fewer), for a
/// message that takes so many items per block.
fn chunks(args: &[&Value]) -> Result<Value, String> {
    let n = count(arg(args, 1), "the size")?;
    if n == 0 {
        return Err("the size must be at least 1".into());
    }
    Ok(match arg(args, 0) {
        Value::Array(items) => Value::from(
            items
                .chunks(n)
                .map(|chunk| Value::from(chunk.to_vec()))
                .collect::<Vec<_>>(),
        ),
        _ => Value::Array(Vec::new()),
    })
}

/// `{{minus a b}}`: `a - b` for whole numbers (for "and N more").
fn minus(args: &[&Value]) -> Result<Value, String> {
    let a = arg(args, 0)
        .as_i64()
        .ok_or("the first argument must be a number")?;
    let b = arg(args, 1)
        .as_i64()
        .ok_or("the second argument must be a number")?;
    Ok(Value::from(a.saturating_sub(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, data: Value) -> String {
        let mut registry = Handlebars::new();
        register(&mut registry, Escape::Raw);
        registry.register_escape_fn(handlebars::no_escape);
        registry.render_template(template, &data).expect("renders")
    }

    #[test]
    fn helpers_do_what_the_guide_says() {
        let data = json!({"s": "Hello world", "n": null, "l": ["a", "b", "c"], "d": "2022-04-25 17:18:00 UTC", "x": 12});
        assert_eq!(render("{{truncate s 5}}", data.clone()), "Hell…");
        assert_eq!(
            render(
                "{{#each (chunks l 2)}}[{{#each this}}{{this}}{{/each}}]{{/each}}",
                data.clone()
            ),
            "[ab][c]"
        );
        assert_eq!(render("{{default n \"none\"}}", data.clone()), "none");
        assert_eq!(render("{{join l \" / \"}}", data.clone()), "a / b / c");
        assert_eq!(
            render("{{upper s}} {{lower s}}", data.clone()),
            "HELLO WORLD hello world"
        );
        assert_eq!(
            render("{{#each (take l 2)}}{{this}}{{/each}}", data.clone()),
            "ab"
        );
        assert_eq!(render("{{minus x 10}}", data.clone()), "2");
        assert_eq!(render("{{json l}}", data.clone()), r#"["a","b","c"]"#);
        assert_eq!(render("{{concat s \"!\"}}", data.clone()), "Hello world!");
        assert_eq!(
            render("{{date d \"%H:%M %Z\" \"Europe/Paris\"}}", data.clone()),
            "19:18 CEST"
        );
        assert_eq!(
            render("{{date d}}", data.clone()),
            "2022-04-25 17:18:00 UTC"
        );
        assert_eq!(
            render("{{url s}}|{{url \"https://a.b/?x=1&y\"}}", data),
            "|https://a.b/?x=1&y"
        );
    }
}
