//! Email over SMTP (lettre): subject, plain text and HTML sent as multipart/alternative.
//! `smtp://` requires STARTTLS, `smtps://` is TLS from the first byte, and
//! `smtp://…?tls=none` is plain SMTP for a relay on the same host or network.

use std::path::PathBuf;

use base64::Engine;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;
use serde_json::{Value, json};

use super::escape::Escape;
use super::{
    AnyDestination, DeliveryError, Destination, EmailMessage, Facts, Kind, Message, Options,
    Outgoing, Pace, Part, Place, Receipt, Sent, Step,
};
use crate::error::ConfigError;
use crate::event::{Event, EventKind, Phase};
use crate::secret::{Redactor, Secret};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp://user:pass@host:587` (STARTTLS required), `smtps://…:465`, or `…?tls=none`;
    /// a secret, since it carries the password.
    pub smtp_url: Option<Secret>,
    pub smtp_url_file: Option<PathBuf>,
    pub from: String,
    pub to: Vec<String>,
    /// A clear answers its trigger's email (`In-Reply-To`, `Re: ` + its subject), so that mail
    /// clients show both in one conversation.
    #[serde(default = "yes")]
    pub thread: bool,
    /// The domain of the `Message-ID`s the relay gives triggers; `from`'s by default.
    pub message_id_domain: Option<String>,
}

pub static KIND: Kind = Kind::new::<EmailConfig>("email", &FACTS);

impl Options for EmailConfig {
    fn build(&self, at: &Place<'_>) -> Result<Box<dyn AnyDestination>, ConfigError> {
        Ok(Box::new(Email::new(self, at)?))
    }
}

fn yes() -> bool {
    true
}

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// Every email's `Message-ID` (RFC 5322 3.6.4: every message should have one).
    ids: MessageIds,
    /// Whether a clear answers its trigger's email.
    thread: bool,
    /// Cuts the URL and the password, as written and as `AUTH` sends it, out of what the server
    /// answers: some servers quote the command they refuse.
    redactor: Redactor,
}

impl Email {
    pub fn new(config: &EmailConfig, at: &Place<'_>) -> Result<Self, ConfigError> {
        let (key, name) = (&at.key, at.name);
        let file = config.smtp_url_file.as_ref().map(|f| at.base_dir.join(f));
        let url = crate::secret::from_value_or_file(
            "smtp_url",
            config.smtp_url.as_ref(),
            file.as_deref(),
        )
        .map_err(|reason| ConfigError::new(key, reason))?;
        let url = lettre_url(&url)
            .map_err(|reason| ConfigError::new(format!("{key}.smtp_url"), reason))?;
        // Both the URL and lettre's error may hold the password: say what is wrong, not where.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
            .map_err(|_| ConfigError::new(format!("{key}.smtp_url"), "is not a usable SMTP URL"))?
            .build();
        let mailbox = |field: &str, text: &str| {
            text.parse::<Mailbox>().map_err(|e| {
                ConfigError::new(
                    format!("{key}.{field}"),
                    format!("{text:?} is not an address: {e}"),
                )
            })
        };
        if config.to.is_empty() {
            return Err(ConfigError::new(format!("{key}.to"), "names no recipient"));
        }
        let from = mailbox("from", &config.from)?;
        let domain = match &config.message_id_domain {
            Some(domain) if valid_domain(domain) => domain.clone(),
            Some(domain) => {
                return Err(ConfigError::new(
                    format!("{key}.message_id_domain"),
                    format!("{domain:?} is not a domain name"),
                ));
            }
            None => from.email.domain().to_owned(),
        };
        Ok(Self {
            redactor: redactor(&url),
            transport,
            ids: MessageIds {
                destination: name.to_owned(),
                domain,
            },
            thread: config.thread,
            from,
            to: config
                .to
                .iter()
                .map(|to| mailbox("to", to))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Turns the relay's SMTP URL into lettre's: plain `smtp://` means STARTTLS required here, and
/// `tls=none` means no TLS at all.
fn lettre_url(url: &Secret) -> Result<Secret, String> {
    let mut parsed = url::Url::parse(url.expose()).map_err(|_| "is not a URL".to_owned())?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("names no host".into());
    }
    let tls = parsed
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let others: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "tls")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let tls = match (parsed.scheme(), tls.as_deref()) {
        ("smtps", None | Some("wrapper" | "required")) => None,
        ("smtp", None | Some("required")) => Some("required"),
        ("smtp", Some("opportunistic")) => Some("opportunistic"),
        ("smtp", Some("none")) => None,
        ("smtp" | "smtps", Some(other)) => {
            return Err(format!(
                "tls={other} is not one of required, opportunistic, none"
            ));
        }
        (scheme, _) => return Err(format!("scheme {scheme}:// is not smtp:// or smtps://")),
    };
    {
        let mut query = parsed.query_pairs_mut();
        query.clear();
        query.extend_pairs(others);
        if let Some(tls) = tls {
            query.append_pair("tls", tls);
        }
    }
    if parsed.query() == Some("") {
        parsed.set_query(None);
    }
    Ok(Secret::new(parsed.to_string()))
}

/// The URL, and the password as written, decoded, and base64-encoded the ways `AUTH PLAIN` and
/// `AUTH LOGIN` send it.
fn redactor(url: &Secret) -> Redactor {
    let mut secrets = vec![url.expose().to_owned()];
    if let Ok(parsed) = url::Url::parse(url.expose())
        && let Some(password) = parsed.password()
    {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let (user, plain_password) = (decode(parsed.username()), decode(password));
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        secrets.extend([
            password.to_owned(),
            b64(&format!("\0{user}\0{plain_password}")),
            b64(&plain_password),
            plain_password,
        ]);
    }
    Redactor::new(secrets)
}

impl Destination for Email {
    /// A clear answers its trigger's email; a group's later notification (a digest) answers its
    /// first one.
    fn steps(&self, event: &Event, thread: Option<&Value>) -> Vec<Step> {
        match (event.kind, event.lifecycle(), thread) {
            (EventKind::Group, _, Some(_)) if self.thread => vec![Step::Reply],
            (_, Some((_, Phase::Clear)), Some(_)) if self.thread => vec![Step::Reply],
            _ => vec![Step::New],
        }
    }

    /// Every email has a `Message-ID`, the same at every attempt. When threading, a trigger's is
    /// made from its alert's key and kept with its subject; its clear answers it with
    /// `In-Reply-To` and `References` and the subject `Re: ` + the trigger's as sent (Gmail
    /// threads only on a matching subject). Any other email's is made from its event's id.
    async fn deliver(&self, outgoing: &Outgoing<'_>) -> Result<Sent, DeliveryError> {
        let (step, Message::Email(email)) = outgoing
            .messages
            .first()
            .ok_or_else(|| DeliveryError::Rejected("nothing to send".into()))?
        else {
            return Err(DeliveryError::Rejected(
                "email takes subject, text and HTML".into(),
            ));
        };
        let trigger = outgoing
            .thread
            .as_ref()
            .and_then(|t| Some((t.get("message_id")?.as_str()?, t.get("subject")?.as_str()?)));
        let mut builder = lettre::Message::builder().from(self.from.clone());
        let mut kept = None;
        let mut message_id = self.ids.for_event(&outgoing.event.id);
        // The email later ones answer: a trigger's, a group's first.
        let opens = match (outgoing.event.kind, outgoing.event.lifecycle()) {
            (EventKind::Group, _) => outgoing.event.summary.alert_id.as_deref(),
            (_, Some((key, Phase::Trigger))) => Some(key),
            _ => None,
        };
        match (step, trigger, opens) {
            (Step::Reply, Some((trigger_id, subject)), _) if self.thread => {
                builder = builder
                    .subject(format!("Re: {subject}"))
                    .in_reply_to(trigger_id.to_owned())
                    .references(trigger_id.to_owned());
            }
            (_, _, Some(key)) if self.thread => {
                builder = builder.subject(email.subject.clone());
                message_id = self.ids.for_alert(key);
                kept = Some(json!({ "message_id": message_id, "subject": email.subject }));
            }
            _ => builder = builder.subject(email.subject.clone()),
        }
        builder = builder.message_id(Some(message_id));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let mail = builder
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| DeliveryError::Rejected(format!("cannot build the email: {e}")))?;
        let response = self
            .transport
            .send(mail)
            .await
            .map_err(|e| DeliveryError::Smtp {
                permanent: e.is_permanent(),
                message: self.redactor.redact(&e.to_string()),
            })?;
        Ok(Sent {
            receipt: Receipt(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            thread: kept,
        })
    }
}

/// Makes this destination's `Message-ID`s, the same at every attempt of a delivery.
struct MessageIds {
    destination: String,
    domain: String,
}

impl MessageIds {
    /// A threading trigger's: `<key.destination@domain>`.
    fn for_alert(&self, key: &str) -> String {
        format!("<{}.{}@{}>", id_part(key), self.destination, self.domain)
    }

    /// Any other email's: `<event-id.destination@domain>`.
    fn for_event(&self, id: &str) -> String {
        format!(
            "<event-{}.{}@{}>",
            id_part(id),
            self.destination,
            self.domain
        )
    }
}

/// `text` as the left part of a `Message-ID` may hold it: at most 200 characters, any character
/// other than letters, digits, `-`, `_` and `.` as `-`.
fn id_part(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Email: a subject (one line), plain text (raw) and HTML (HTML-escaped), each its own template; a
/// few messages a second, since mail relays throttle senders that burst.
pub struct EmailFacts;

pub static FACTS: EmailFacts = EmailFacts;

impl Facts for EmailFacts {
    fn parts(&self) -> &'static [Part] {
        &[Part::Subject, Part::Text, Part::Html]
    }

    fn escape(&self, part: Part) -> Escape {
        match part {
            Part::Subject => Escape::Line,
            Part::Html => Escape::Html,
            Part::Body | Part::Text => Escape::Raw,
        }
    }

    fn builtin(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "default.subject.hbs",
                include_str!("../../templates/email/default.subject.hbs"),
            ),
            (
                "default.txt.hbs",
                include_str!("../../templates/email/default.txt.hbs"),
            ),
            (
                "default.html.hbs",
                include_str!("../../templates/email/default.html.hbs"),
            ),
            (
                "group.subject.hbs",
                include_str!("../../templates/email/group.subject.hbs"),
            ),
            (
                "group.txt.hbs",
                include_str!("../../templates/email/group.txt.hbs"),
            ),
            (
                "group.html.hbs",
                include_str!("../../templates/email/group.html.hbs"),
            ),
        ]
    }

    fn message(&self, texts: Vec<String>) -> Result<Message, String> {
        let [subject, text, html] = <[String; 3]>::try_from(texts)
            .map_err(|_| "subject, text and HTML expected".to_owned())?;
        let email = EmailMessage {
            subject: subject.trim().to_owned(),
            text,
            html,
        };
        validate(&email).map_err(|reason| format!("invalid: {reason}"))?;
        Ok(Message::Email(email))
    }

    fn fallback(&self, event: &Event) -> Message {
        let headline = super::headline(event);
        let link = event.summary.link.as_deref();
        let text = format!("{headline}\n{}\n", link.unwrap_or(""));
        let html = format!(
            "<p>{}</p>{}",
            Escape::Html.apply(&headline),
            link.map(|l| format!("<p><a href=\"{0}\">{0}</a></p>", Escape::Html.apply(l)))
                .unwrap_or_default()
        );
        Message::Email(EmailMessage {
            subject: Escape::Line.apply(&headline),
            text,
            html,
        })
    }

    fn pace(&self) -> Pace {
        Pace::per_second(5, None)
    }
}

/// What makes no email: an empty or multi-line subject, no text and no HTML.
fn validate(email: &EmailMessage) -> Result<(), String> {
    if email.subject.trim().is_empty() {
        return Err("the subject is empty".into());
    }
    if email.subject.contains(['\r', '\n']) {
        return Err("the subject must be one line".into());
    }
    if email.text.trim().is_empty() && email.html.trim().is_empty() {
        return Err("the email has no text and no HTML".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(url: &str) -> Result<String, String> {
        lettre_url(&Secret::new(url)).map(|s| s.expose().to_owned())
    }

    #[test]
    fn smtp_urls_default_to_starttls() {
        assert_eq!(
            convert("smtp://u:p@mail.example.com:587").unwrap(),
            "smtp://u:p@mail.example.com:587?tls=required"
        );
        assert_eq!(
            convert("smtp://mail.example.com:25?tls=none").unwrap(),
            "smtp://mail.example.com:25"
        );
        assert_eq!(
            convert("smtps://u:p@mail.example.com").unwrap(),
            "smtps://u:p@mail.example.com"
        );
        assert!(convert("http://mail.example.com").is_err());
        assert!(convert("smtp://mail.example.com?tls=maybe").is_err());
    }
}
