//! Finds the variables a template refers to that no sample event provides: most often a typo
//! (`summary.titel`), sometimes an operator's own field that the samples cannot know. `check`
//! reports them as warnings.

use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use serde_json::Value;

/// Paths (`summary.title`, `alert.ruleName`) that `template` reads from the root of the context.
/// Inside `#each` and `#with` the context moves to the item: there only `../` and `@root.` paths
/// still point at the root.
pub fn root_paths(template: &Template) -> Vec<String> {
    let mut paths = Vec::new();
    walk(&template.elements, 0, &mut paths);
    paths.sort();
    paths.dedup();
    paths
}

fn walk(elements: &[TemplateElement], depth: usize, paths: &mut Vec<String>) {
    for element in elements {
        match element {
            TemplateElement::Expression(helper) | TemplateElement::HtmlExpression(helper) => {
                helper_paths(helper, depth, paths)
            }
            TemplateElement::HelperBlock(helper) => {
                helper_paths(helper, depth, paths);
                let name = match &helper.name {
                    Parameter::Name(name) => name.as_str(),
                    _ => "",
                };
                let inner = if matches!(name, "each" | "with") {
                    depth + 1
                } else {
                    depth
                };
                if let Some(block) = &helper.template {
                    walk(&block.elements, inner, paths);
                }
                if let Some(inverse) = &helper.inverse {
                    walk(&inverse.elements, depth, paths);
                }
            }
            _ => {}
        }
    }
}

fn helper_paths(helper: &HelperTemplate, depth: usize, paths: &mut Vec<String>) {
    for parameter in std::iter::once(&helper.name)
        .chain(&helper.params)
        .chain(helper.hash.values())
    {
        parameter_paths(parameter, depth, paths);
    }
}

fn parameter_paths(parameter: &Parameter, depth: usize, paths: &mut Vec<String>) {
    match parameter {
        Parameter::Path(handlebars::Path::Relative((_, raw))) => {
            if let Some(path) = from_root(raw, depth) {
                paths.push(path);
            }
        }
        Parameter::Subexpression(sub) => {
            if let TemplateElement::Expression(helper) = sub.element.as_ref() {
                helper_paths(helper, depth, paths);
            }
        }
        _ => {}
    }
}

/// The path from the root that `raw` names at block depth `depth`, if it names one.
fn from_root(raw: &str, depth: usize) -> Option<String> {
    if let Some(rest) = raw.strip_prefix("@root.") {
        return Some(rest.to_owned());
    }
    if raw.starts_with('@') || raw == "this" || raw.starts_with("this.") {
        return None;
    }
    let mut rest = raw;
    let mut up = 0;
    while let Some(stripped) = rest.strip_prefix("../") {
        rest = stripped;
        up += 1;
    }
    (up == depth).then(|| rest.to_owned())
}

/// Whether `path` (`summary.targets.0.name`) exists in `context`.
pub fn provided(context: &Value, path: &str) -> bool {
    let mut value = context;
    for segment in path.split('.') {
        let segment = segment.trim_start_matches('[').trim_end_matches(']');
        value = match value {
            Value::Object(map) => match map.get(segment) {
                Some(v) => v,
                None => return false,
            },
            Value::Array(items) => match segment.parse::<usize>().ok().and_then(|i| items.get(i)) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_root_paths_outside_and_inside_blocks() {
        let template = Template::compile(
            "{{summary.title}} {{json raw}} {{#if (eq summary.state \"x\")}}{{alert.ruleName}}{{/if}}\
             {{#each (take summary.targets 10)}}{{name}} {{../summary.titel}} {{@root.event.id}}{{/each}}",
        )
        .unwrap();
        assert_eq!(
            root_paths(&template),
            [
                "alert.ruleName",
                "event.id",
                "raw",
                "summary.state",
                "summary.targets",
                "summary.titel",
                "summary.title"
            ]
        );
        let context = json!({"summary": {"title": "t", "targets": [{"name": "a"}]}});
        assert!(provided(&context, "summary.title"));
        assert!(provided(&context, "summary.targets.0.name"));
        assert!(!provided(&context, "summary.titel"));
    }
}
