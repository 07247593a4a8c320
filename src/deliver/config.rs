//! `[destinations.NAME]`: what a kind is in the registry ([`Kind`]), the options every kind takes
//! (`templates`, `rate_limit`, `burst`, declared once in [`CommonOptions`]), and how a table is
//! read: `kind` picks the entry of [`super::KINDS`], the shared options are taken out, and the
//! rest must be exactly the kind's own keys.

use std::fmt;
use std::path::Path;

use figment::value::{Dict, Value};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use super::{AnyDestination, CommonOptions, DestinationKind, Facts};
use crate::error::{ConfigError, value_problem};

/// The keys of [`CommonOptions`], which every kind takes.
const COMMON_KEYS: [&str; 3] = ["templates", "rate_limit", "burst"];

/// One destination kind: its name, its facts, and how its config is read.
pub struct Kind {
    /// As written in `kind = "…"` and as the name of its template directory.
    pub name: &'static str,
    pub facts: &'static dyn Facts,
    /// Reads the kind's own keys of a table.
    options: fn(Value) -> Read,
}

/// A kind's own keys, read (the error boxed: figment's is large).
type Read = Result<Box<dyn Options>, Box<figment::Error>>;

impl Kind {
    /// The kind `name`, whose own keys make a `C` (a struct that refuses unknown fields).
    pub const fn new<C: Options + DeserializeOwned + 'static>(
        name: &'static str,
        facts: &'static dyn Facts,
    ) -> Self {
        Self {
            name,
            facts,
            options: read::<C>,
        }
    }
}

fn read<C: Options + DeserializeOwned + 'static>(table: Value) -> Read {
    Ok(Box::new(table.deserialize::<C>().map_err(Box::new)?))
}

/// A kind's own config, as read: what builds its destination.
pub trait Options: fmt::Debug + Send + Sync {
    /// The destination this config describes; secrets given as files are read here.
    fn build(&self, at: &Place<'_>) -> Result<Box<dyn AnyDestination>, ConfigError>;
}

/// Where a destination is built.
pub struct Place<'a> {
    /// Its name in `[destinations]`.
    pub name: &'a str,
    /// `destinations.NAME`, what its config errors are about.
    pub key: String,
    /// Relative paths in the config are relative to this.
    pub base_dir: &'a Path,
    /// The HTTP client every destination sends with.
    pub http: &'a reqwest::Client,
}

/// One `[destinations.NAME]` table, read.
#[derive(Debug)]
pub struct DestinationConfig {
    pub kind: DestinationKind,
    pub common: CommonOptions,
    options: Box<dyn Options>,
}

impl DestinationConfig {
    /// Builds the destination called `name`.
    pub fn build(
        &self,
        name: &str,
        base_dir: &Path,
        http: &reqwest::Client,
    ) -> Result<Box<dyn AnyDestination>, ConfigError> {
        self.options.build(&Place {
            name,
            key: format!("destinations.{name}"),
            base_dir,
            http,
        })
    }
}

impl<'de> Deserialize<'de> for DestinationConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut table = Dict::deserialize(deserializer)?;
        let kind = match table.remove("kind") {
            Some(Value::String(_, name)) => DestinationKind::named(&name).ok_or_else(|| {
                D::Error::custom(format!(
                    "kind: {name:?} is not a destination kind: one of {}",
                    DestinationKind::all()
                        .map(DestinationKind::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
            Some(_) => return Err(D::Error::custom("kind: must be a string")),
            None => return Err(D::Error::missing_field("kind")),
        };
        let mut common = Dict::new();
        for key in COMMON_KEYS {
            if let Some(value) = table.remove(key) {
                common.insert(key.to_owned(), value);
            }
        }
        let common = Value::from(common)
            .deserialize::<CommonOptions>()
            .map_err(|e| rethrow(Box::new(e)))?;
        let options = (kind.0.options)(Value::from(table)).map_err(rethrow)?;
        Ok(Self {
            kind,
            common,
            options,
        })
    }
}

/// A figment error from reading part of a table, as an error of the whole table's reader: its
/// key within the table and the problem, never the value (a secret may sit under a wrong key).
fn rethrow<E: serde::de::Error>(error: Box<figment::Error>) -> E {
    let problem = value_problem(&error.kind);
    // An unknown field names itself; the shared options are told apart from the kind's own.
    if let figment::error::Kind::UnknownField(..) = error.kind {
        return E::custom(format!(
            "{problem} (or one of {}, which every kind takes)",
            COMMON_KEYS.join(", ")
        ));
    }
    match error.path.join(".") {
        key if key.is_empty() => E::custom(problem),
        key => E::custom(format!("{key}: {problem}")),
    }
}
