//! Strict decoding of what an operator writes: a payload or facts file is decoded into the same
//! wire type the bus carries, but a key that is no field of the type is refused, with its path and
//! the nearest known name (`bindings[0].namspace: unknown field; did you mean namespace?`), and a
//! wrong value names its path too (`bindings[0].name: invalid type: integer `5`, expected a string`).
//!
//! ```text
//!   YAML/JSON text ──(caller: serde_yaml / serde_json)──► serde_json::Value
//!        ──strict::from_value::<T>──► T          (T: the tolerant wire type, unchanged)
//! ```
//!
//! Why not `#[serde(deny_unknown_fields)]`: the wire types must stay tolerant, so that an agent of
//! an older minor version reads a command with a field it does not know (see proto's invariant).
//! One type serves both; strictness belongs to the decoder, not to the type.
//!
//! How: [`from_value`] drives `T::deserialize` with its own [`serde::Deserializer`] over a
//! `serde_json::Value`. It remembers the path of every value it hands out, and the `fields` list
//! serde passes to `deserialize_struct`. A derived `Deserialize` skips a key it does not know by
//! calling `deserialize_ignored_any` on the key's value: when that value belongs to a struct, the key
//! is unknown, and it is reported with the nearest of the struct's fields (Jaro-Winkler, `strsim`).
//!
//! # Limits
//! - **Buffered content.** Internally tagged (`#[serde(tag = "type")]`) and untagged enums and
//!   `#[serde(flatten)]` read their content with `deserialize_any` into serde's private buffer and
//!   decode from that buffer, which never comes back to this deserializer: an unknown key in there
//!   would be dropped unseen. So every value read with `deserialize_any` is remembered, and
//!   after the decode the result is encoded again and compared with it: a key of the input that
//!   the re-encoding lacks is unknown (suggestions come from the re-encoding's keys). This needs
//!   `T: Serialize`, and it refuses, inside such content only, a real field that is never
//!   serialized (`skip_serializing`) or that is skipped when empty and given explicitly as such
//!   (`x: null` for a `skip_serializing_if = "Option::is_none"` field), and an `alias`. No type
//!   fleetctl reads has one there (`IdentityChoice` is the only buffered type they contain).
//! - Wrong types inside buffered content are reported at the path of the buffered value
//!   (`identity: invalid type: …`), not deeper.
//! - Map keys are strings (as in JSON): a map with integer keys does not decode.
//! - Errors stop at the first problem; keys are visited in the order of `serde_json::Map`.

#[cfg(test)]
mod tests;

use serde::Serialize;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};
use serde_json::Value;
use std::cell::RefCell;
use std::fmt;

/// One step of a [`Path`]: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Where a value is in the document, rendered `bindings[0].namespace` (empty at the root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(Vec<Segment>);

impl Path {
    /// The document itself.
    pub fn root() -> Path {
        Path(Vec::new())
    }

    /// The steps from the root.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// True at the document's root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    fn child(&self, segment: Segment) -> Path {
        let mut segments = self.0.clone();
        segments.push(segment);
        Path(segments)
    }

    fn key(&self, key: &str) -> Path {
        self.child(Segment::Key(key.to_string()))
    }

    fn index(&self, index: usize) -> Path {
        self.child(Segment::Index(index))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if position == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Why a document does not decode strictly; each variant carries the path of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrictError {
    /// A key that is no field of the type at its place (the path ends with the key).
    #[error("{}unknown field{}", prefix(path), hint(did_you_mean.as_deref(), known))]
    UnknownField {
        path: Path,
        /// The known field nearest to the key, when one is near enough.
        did_you_mean: Option<String>,
        /// Every field known at that place.
        known: Vec<String>,
    },
    /// A value serde refused: wrong type, missing field, unknown enum variant, wrong length.
    #[error("{}{message}", prefix(path))]
    Invalid { path: Path, message: String },
}

impl StrictError {
    /// Where the problem is.
    pub fn path(&self) -> &Path {
        match self {
            StrictError::UnknownField { path, .. } | StrictError::Invalid { path, .. } => path,
        }
    }

    /// A stable code: `unknown_field` or `invalid_value`.
    pub fn code(&self) -> &'static str {
        match self {
            StrictError::UnknownField { .. } => "unknown_field",
            StrictError::Invalid { .. } => "invalid_value",
        }
    }
}

fn prefix(path: &Path) -> String {
    if path.is_root() { String::new() } else { format!("{path}: ") }
}

fn hint(did_you_mean: Option<&str>, known: &[String]) -> String {
    match did_you_mean {
        Some(name) => format!("; did you mean {name}?"),
        None if known.is_empty() => String::new(),
        None => format!("; expected one of {}", known.join(", ")),
    }
}

/// The known name nearest to `name`, if it is near enough to be a misspelling of it.
fn nearest<'k>(name: &str, known: impl IntoIterator<Item = &'k str>) -> Option<String> {
    const NEAR_ENOUGH: f64 = 0.8;
    known
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(name, candidate), candidate))
        .filter(|(score, _)| *score >= NEAR_ENOUGH)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate.to_string())
}

fn unknown_field<'k>(path: Path, known: impl IntoIterator<Item = &'k str>) -> StrictError {
    let known: Vec<String> = known.into_iter().map(str::to_string).collect();
    let name = match path.segments().last() {
        Some(Segment::Key(key)) => key.clone(),
        _ => String::new(),
    };
    let did_you_mean = nearest(&name, known.iter().map(String::as_str));
    StrictError::UnknownField { path, did_you_mean, known }
}

/// Decodes `value` into `T`, refusing unknown keys and naming the path of every problem; see the
/// module doc for how and for the limits. A document that decodes strictly decodes to exactly what
/// `serde_json::from_value` gives.
pub fn from_value<T: DeserializeOwned + Serialize>(value: Value) -> Result<T, StrictError> {
    let buffered = RefCell::new(Vec::new());
    let deserializer = ValueDeserializer { value, path: Path::root(), struct_fields: None, buffered: &buffered };
    let decoded = T::deserialize(deserializer).map_err(Failure::into_strict)?;
    let buffered = buffered.into_inner();
    if !buffered.is_empty() {
        let encoded = serde_json::to_value(&decoded).map_err(|error| StrictError::Invalid {
            path: Path::root(),
            message: format!("the decoded value cannot be encoded again: {error}"),
        })?;
        for (path, input) in &buffered {
            check_buffered(&encoded, path, input)?;
        }
    }
    Ok(decoded)
}

/// Compares buffered input at `path` with the re-encoded value at the same path.
fn check_buffered(encoded: &Value, path: &Path, input: &Value) -> Result<(), StrictError> {
    let mut here = encoded;
    let mut walked = Path::root();
    for segment in path.segments() {
        let next = match (segment, here) {
            (Segment::Key(key), Value::Object(map)) => match map.get(key) {
                Some(next) => next,
                None => return Err(unknown_field(walked.key(key), map.keys().map(String::as_str))),
            },
            (Segment::Index(index), Value::Array(items)) => match items.get(*index) {
                Some(next) => next,
                None => return Ok(()),
            },
            // The shapes differ (say, a struct read from an array): nothing to compare.
            _ => return Ok(()),
        };
        here = next;
        walked = walked.child(segment.clone());
    }
    compare(input, here, &walked)
}

fn compare(input: &Value, encoded: &Value, path: &Path) -> Result<(), StrictError> {
    match (input, encoded) {
        (Value::Object(input), Value::Object(encoded)) => {
            for (key, value) in input {
                match encoded.get(key) {
                    Some(encoded_value) => compare(value, encoded_value, &path.key(key))?,
                    None => return Err(unknown_field(path.key(key), encoded.keys().map(String::as_str))),
                }
            }
            Ok(())
        }
        (Value::Array(input), Value::Array(encoded)) if input.len() == encoded.len() => {
            for (index, (value, encoded_value)) in input.iter().zip(encoded).enumerate() {
                compare(value, encoded_value, &path.index(index))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The error type inside the deserializer: serde creates it without a path (`missing field`,
/// `invalid type`), and the level that called serde adds its own path if none is set yet, so the
/// innermost path wins.
#[derive(Debug)]
struct Failure {
    path: Option<Path>,
    problem: Problem,
}

#[derive(Debug)]
enum Problem {
    Unknown(StrictError),
    Invalid(String),
}

impl Failure {
    fn invalid(path: &Path, error: impl fmt::Display) -> Failure {
        Failure { path: Some(path.clone()), problem: Problem::Invalid(error.to_string()) }
    }

    fn at(mut self, path: &Path) -> Failure {
        if self.path.is_none() {
            self.path = Some(path.clone());
        }
        self
    }

    fn into_strict(self) -> StrictError {
        match self.problem {
            Problem::Unknown(error) => error,
            Problem::Invalid(message) => StrictError::Invalid { path: self.path.unwrap_or_default(), message },
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            Problem::Unknown(error) => error.fmt(f),
            Problem::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Failure {}

impl de::Error for Failure {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Failure { path: None, problem: Problem::Invalid(message.to_string()) }
    }
}

fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(boolean) => Unexpected::Bool(*boolean),
        Value::Number(number) => match (number.as_u64(), number.as_i64(), number.as_f64()) {
            (Some(unsigned), _, _) => Unexpected::Unsigned(unsigned),
            (None, Some(signed), _) => Unexpected::Signed(signed),
            (None, None, Some(float)) => Unexpected::Float(float),
            (None, None, None) => Unexpected::Other("number"),
        },
        Value::String(text) => Unexpected::Str(text),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

/// Buffered regions found so far: their path and their input.
type Buffered = RefCell<Vec<(Path, Value)>>;

struct ValueDeserializer<'s> {
    value: Value,
    path: Path,
    /// The fields of the struct this value is a field of: an ignored value here is an unknown key.
    struct_fields: Option<&'static [&'static str]>,
    buffered: &'s Buffered,
}

impl ValueDeserializer<'_> {
    fn invalid_type(&self, expected: &dyn de::Expected) -> Failure {
        <Failure as de::Error>::invalid_type(unexpected(&self.value), expected).at(&self.path)
    }
}

/// Scalars: serde_json's own deserializer does the work; its error gets the path.
macro_rules! delegate_to_serde_json {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failure> {
            let path = self.path;
            self.value.$method(visitor).map_err(|error| Failure::invalid(&path, error))
        }
    )*};
}

impl<'de, 's> de::Deserializer<'de> for ValueDeserializer<'s> {
    type Error = Failure;

    delegate_to_serde_json!(
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f32 deserialize_f64
        deserialize_char deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_identifier
    );

    /// The caller does not say what it wants: its content may be buffered (see the module doc).
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failure> {
        self.buffered.borrow_mut().push((self.path.clone(), self.value.clone()));
        let path = self.path;
        self.value.deserialize_any(visitor).map_err(|error| Failure::invalid(&path, error))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failure> {
        let path = self.path.clone();
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|failure| failure.at(&path))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failure> {
        match self.value {
            Value::Null => visitor.visit_unit::<Failure>().map_err(|failure| failure.at(&self.path)),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Failure> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Failure> {
        let path = self.path.clone();
        visitor.visit_newtype_struct(self).map_err(|failure| failure.at(&path))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failure> {
        let Value::Array(items) = self.value else { return Err(self.invalid_type(&visitor)) };
        let total = items.len();
        let mut access =
            SeqAccess { items: items.into_iter(), next_index: 0, path: self.path.clone(), buffered: self.buffered };
        let value = visitor.visit_seq(&mut access).map_err(|failure| failure.at(&self.path))?;
        if access.items.len() > 0 {
            return Err(<Failure as de::Error>::invalid_length(total, &"fewer elements in the array").at(&self.path));
        }
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Failure> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Failure> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failure> {
        let Value::Object(entries) = self.value else { return Err(self.invalid_type(&visitor)) };
        let access = MapAccess {
            entries: entries.into_iter(),
            pending: None,
            path: self.path.clone(),
            struct_fields: None,
            buffered: self.buffered,
        };
        visitor.visit_map(access).map_err(|failure| failure.at(&self.path))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Failure> {
        match self.value {
            Value::Object(entries) => {
                let access = MapAccess {
                    entries: entries.into_iter(),
                    pending: None,
                    path: self.path.clone(),
                    struct_fields: Some(fields),
                    buffered: self.buffered,
                };
                visitor.visit_map(access).map_err(|failure| failure.at(&self.path))
            }
            // serde_json reads a struct from an array of its fields in order; so does this.
            Value::Array(_) => self.deserialize_seq(visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Failure> {
        let (variant, content) = match self.value {
            Value::String(variant) => (variant, None),
            Value::Object(entries) if entries.len() == 1 => match entries.into_iter().next() {
                Some((variant, content)) => (variant, Some(content)),
                None => return Err(Failure::invalid(&self.path, "expected an enum variant")),
            },
            _ => {
                return Err(<Failure as de::Error>::invalid_value(
                    unexpected(&self.value),
                    &"a variant name or a map with a single key",
                )
                .at(&self.path));
            }
        };
        let access = EnumAccess { variant, content, path: self.path.clone(), buffered: self.buffered };
        visitor.visit_enum(access).map_err(|failure| failure.at(&self.path))
    }

    /// A derived `Deserialize` skips an unknown key by ignoring its value: in a struct, refuse it.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Failure> {
        match self.struct_fields {
            Some(fields) => Err(Failure {
                path: Some(self.path.clone()),
                problem: Problem::Unknown(unknown_field(self.path, fields.iter().copied())),
            }),
            None => visitor.visit_unit(),
        }
    }
}

struct SeqAccess<'s> {
    items: std::vec::IntoIter<Value>,
    next_index: usize,
    path: Path,
    buffered: &'s Buffered,
}

impl<'de, 's> de::SeqAccess<'de> for SeqAccess<'s> {
    type Error = Failure;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, Failure> {
        let Some(item) = self.items.next() else { return Ok(None) };
        let path = self.path.index(self.next_index);
        self.next_index += 1;
        let deserializer =
            ValueDeserializer { value: item, path: path.clone(), struct_fields: None, buffered: self.buffered };
        seed.deserialize(deserializer).map(Some).map_err(|failure| failure.at(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapAccess<'s> {
    entries: serde_json::map::IntoIter,
    pending: Option<(String, Value)>,
    path: Path,
    struct_fields: Option<&'static [&'static str]>,
    buffered: &'s Buffered,
}

impl<'de, 's> de::MapAccess<'de> for MapAccess<'s> {
    type Error = Failure;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Failure> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        let path = self.path.key(&key);
        let decoded_key = seed
            .deserialize(IntoDeserializer::<Failure>::into_deserializer(key.clone()))
            .map_err(|failure| failure.at(&path))?;
        self.pending = Some((key, value));
        Ok(Some(decoded_key))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Failure> {
        let Some((key, value)) = self.pending.take() else {
            return Err(Failure::invalid(&self.path, "a map value was asked for before its key"));
        };
        let path = self.path.key(&key);
        let deserializer =
            ValueDeserializer { value, path: path.clone(), struct_fields: self.struct_fields, buffered: self.buffered };
        seed.deserialize(deserializer).map_err(|failure| failure.at(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct EnumAccess<'s> {
    variant: String,
    content: Option<Value>,
    path: Path,
    buffered: &'s Buffered,
}

impl<'de, 's> de::EnumAccess<'de> for EnumAccess<'s> {
    type Error = Failure;
    type Variant = VariantAccess<'s>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, VariantAccess<'s>), Failure> {
        let variant = seed
            .deserialize(IntoDeserializer::<Failure>::into_deserializer(self.variant.clone()))
            .map_err(|failure| failure.at(&self.path))?;
        let content = self.content.map(|value| ValueDeserializer {
            value,
            path: self.path.key(&self.variant),
            struct_fields: None,
            buffered: self.buffered,
        });
        Ok((variant, VariantAccess { content, path: self.path }))
    }
}

struct VariantAccess<'s> {
    /// The variant's content (`{variant: content}`); `None` for a variant written as a string.
    content: Option<ValueDeserializer<'s>>,
    path: Path,
}

impl<'s> VariantAccess<'s> {
    fn content(self, expected: &str) -> Result<ValueDeserializer<'s>, Failure> {
        self.content
            .ok_or_else(|| <Failure as de::Error>::invalid_type(Unexpected::UnitVariant, &expected).at(&self.path))
    }
}

impl<'de, 's> de::VariantAccess<'de> for VariantAccess<'s> {
    type Error = Failure;

    fn unit_variant(self) -> Result<(), Failure> {
        match self.content {
            None => Ok(()),
            Some(content) if content.value.is_null() => Ok(()),
            Some(content) => Err(content.invalid_type(&"a unit variant")),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Failure> {
        let content = self.content("a newtype variant")?;
        let path = content.path.clone();
        seed.deserialize(content).map_err(|failure| failure.at(&path))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Failure> {
        de::Deserializer::deserialize_seq(self.content("a tuple variant")?, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(self, fields: &'static [&'static str], visitor: V) -> Result<V::Value, Failure> {
        de::Deserializer::deserialize_struct(self.content("a struct variant")?, "", fields, visitor)
    }
}
