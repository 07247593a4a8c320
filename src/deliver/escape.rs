//! Escaping is chosen by the output, never left to the template author: every `{{value}}` goes
//! through the function of the output it lands in. Triple braces `{{{value}}}` opt out.

/// How values are escaped in one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Escape {
    /// JSON string content (webhook).
    Json,
    /// JSON string content after every `]` is followed by an invisible space, so that event data
    /// cannot form a markdown link, image or reference in a Teams card: not `[click](https://…)`,
    /// not `![x](https://…)`, not `[click][r]` with a line `[r]: https://…`.
    Teams,
    /// JSON string content after `&`, `<`, `>` become entities, so that event data can never form
    /// a Slack mention (`<!channel>`, `<@U…>`) or a link.
    Slack,
    /// HTML text (email HTML part).
    Html,
    /// One line: control characters become spaces, so data cannot add an email header line.
    Line,
    /// As is (email plain text, console).
    Raw,
}

impl Escape {
    pub const ALL: [Escape; 6] = [
        Self::Json,
        Self::Teams,
        Self::Slack,
        Self::Html,
        Self::Line,
        Self::Raw,
    ];

    pub fn apply(self, text: &str) -> String {
        match self {
            Self::Json => json_content(text),
            Self::Teams => json_content(&teams_markdown(text)),
            Self::Slack => json_content(&slack_entities(text)),
            Self::Html => handlebars::html_escape(text),
            Self::Line => one_line(text),
            Self::Raw => text.to_owned(),
        }
    }

    /// How a link is written: JSON outputs get JSON escaping only, since Slack does not parse a
    /// button's `url` as mrkdwn and `&amp;` would break ThousandEyes permalinks.
    pub fn apply_to_url(self, text: &str) -> String {
        match self {
            Self::Json | Self::Teams | Self::Slack => json_content(text),
            other => other.apply(text),
        }
    }
}

/// `text` as the content of a JSON string, without the surrounding quotes.
pub fn json_content(text: &str) -> String {
    let quoted = serde_json::Value::from(text).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// Text that Teams' markdown shows as written: every `]` is followed by an invisible space, so
/// that it cannot close the text of a link, an image or a reference.
pub fn teams_markdown(text: &str) -> String {
    text.replace(']', "]\u{200B}")
}

/// Slack's own escaping for mrkdwn text: only `&`, `<` and `>`.
pub fn slack_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_output_neutralizes_its_own_syntax() {
        let hostile = "<!channel> & \"q\" \\ \n</script>";
        assert_eq!(
            Escape::Slack.apply(hostile),
            r#"&lt;!channel&gt; &amp; \"q\" \\ \n&lt;/script&gt;"#
        );
        assert_eq!(
            Escape::Json.apply(hostile),
            r#"<!channel> & \"q\" \\ \n</script>"#
        );
        assert!(!Escape::Html.apply(hostile).contains('<'));
        assert_eq!(Escape::Line.apply("a\r\nBcc: x"), "a  Bcc: x");
        assert_eq!(
            Escape::Slack.apply_to_url("https://x/?a=1&b=2"),
            "https://x/?a=1&b=2"
        );
    }
}
