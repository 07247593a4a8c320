//! Measures a body before it is parsed: how deep it nests, how long its strings are, how many
//! values it holds. Streaming, without building anything, so that a body that would take far more
//! memory parsed than it takes as text (100,000 empty objects: 300 KB of text, 8 MB parsed) is
//! refused before it costs that memory, and so that the memory a parse will take is known ahead.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::error::{EventError, MAX_DEPTH, MAX_STRING_BYTES, MAX_VALUES};

/// What a body holds, found without parsing it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub values: usize,
    /// Bytes of strings and keys.
    pub text_bytes: usize,
}

/// A body that was measured and is within the limits, ready to parse.
#[derive(Debug, Clone, Copy)]
pub struct Measured<'a> {
    pub body: &'a [u8],
    pub shape: Shape,
}

/// Measures `body` (without a byte order mark in front), refusing it as soon as it breaks a
/// limit.
pub fn measure(body: &[u8]) -> Result<Measured<'_>, EventError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    Ok(Measured {
        body,
        shape: Shape::of(body)?,
    })
}

impl Shape {
    /// Measures `body`, refusing it as soon as it breaks a limit.
    fn of(body: &[u8]) -> Result<Shape, EventError> {
        let mut shape = Shape::default();
        let mut broken = None;
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let measured = Measure {
            shape: &mut shape,
            broken: &mut broken,
            depth: 1,
        }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
        match (broken, measured) {
            (Some(limit), _) => Err(limit),
            (None, Err(e)) => Err(EventError::NotJson(e)),
            (None, Ok(())) => Ok(shape),
        }
    }

    /// About how many bytes the body takes once parsed into a JSON value.
    pub fn parsed_bytes(&self) -> usize {
        crate::memory::json_bytes(self.values, self.text_bytes)
    }
}

struct Measure<'a> {
    shape: &'a mut Shape,
    /// The limit that stopped the walk, if one did.
    broken: &'a mut Option<EventError>,
    depth: usize,
}

impl Measure<'_> {
    fn value<E: de::Error>(&mut self) -> Result<(), E> {
        if self.depth > MAX_DEPTH {
            return Err(self.stop(EventError::TooDeep));
        }
        self.shape.values += 1;
        if self.shape.values > MAX_VALUES {
            return Err(self.stop(EventError::TooManyValues));
        }
        Ok(())
    }

    fn text<E: de::Error>(&mut self, text: &str) -> Result<(), E> {
        if text.len() > MAX_STRING_BYTES {
            return Err(self.stop(EventError::StringTooLong));
        }
        self.shape.text_bytes += text.len();
        Ok(())
    }

    fn stop<E: de::Error>(&mut self, limit: EventError) -> E {
        let message = limit.to_string();
        *self.broken = Some(limit);
        E::custom(message)
    }

    fn nested(&mut self) -> Measure<'_> {
        Measure {
            shape: self.shape,
            broken: self.broken,
            depth: self.depth + 1,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Measure<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Measure<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(mut self, _: bool) -> Result<(), E> {
        self.value()
    }

    fn visit_i64<E: de::Error>(mut self, _: i64) -> Result<(), E> {
        self.value()
    }

    fn visit_u64<E: de::Error>(mut self, _: u64) -> Result<(), E> {
        self.value()
    }

    fn visit_f64<E: de::Error>(mut self, _: f64) -> Result<(), E> {
        self.value()
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.value()
    }

    fn visit_str<E: de::Error>(mut self, text: &str) -> Result<(), E> {
        self.value()?;
        self.text(text)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut items: A) -> Result<(), A::Error> {
        self.value()?;
        while items.next_element_seed(self.nested())?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut entries: A) -> Result<(), A::Error> {
        self.value()?;
        while entries.next_key_seed(Key(&mut self))?.is_some() {
            entries.next_value_seed(self.nested())?;
        }
        Ok(())
    }
}

/// An object's key: text, not a value of its own.
struct Key<'a, 'b>(&'a mut Measure<'b>);

impl<'de> DeserializeSeed<'de> for Key<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        self.0.text(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_values_and_text_and_stops_at_each_limit() {
        let shape = Shape::of(br#"{"a": [1, "xy", null, {"b": true}]}"#).unwrap();
        assert_eq!(
            measure(b"\xEF\xBB\xBF[1]").unwrap().shape,
            Shape {
                values: 2,
                text_bytes: 0
            },
            "a byte order mark is not part of the body"
        );
        assert_eq!(
            shape,
            Shape {
                values: 7,
                text_bytes: 4
            }
        );
        let many = format!("[{}0]", "0,".repeat(MAX_VALUES));
        assert!(matches!(
            Shape::of(many.as_bytes()),
            Err(EventError::TooManyValues)
        ));
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(matches!(
            Shape::of(deep.as_bytes()),
            Err(EventError::TooDeep)
        ));
        let exactly_deep = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(Shape::of(exactly_deep.as_bytes()).is_ok());
        let long = format!(r#"{{"s": "{}"}}"#, "a".repeat(MAX_STRING_BYTES + 1));
        assert!(matches!(
            Shape::of(long.as_bytes()),
            Err(EventError::StringTooLong)
        ));
        let long_key = format!(r#"{{"{}": 1}}"#, "k".repeat(MAX_STRING_BYTES + 1));
        assert!(matches!(
            Shape::of(long_key.as_bytes()),
            Err(EventError::StringTooLong)
        ));
        assert!(matches!(Shape::of(b"{} x"), Err(EventError::NotJson(_))));
        assert!(matches!(Shape::of(b"[1,"), Err(EventError::NotJson(_))));
    }
}
