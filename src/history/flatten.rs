//! Every number of a value that implements `Serialize` (the `/api/system/metrics` element), as
//! (path, number) leaves: struct fields by their wire names, array items by position, map
//! entries by key. Walks the value with a serde [`Serializer`] — no JSON is written — so the
//! paths are exactly the element's JSON names and a field added to the element is kept without
//! a line here.
//!
//! A leaf's path is handed over as its segments ([`Segment`]: a field's `&'static str`, an
//! item's index, a map key), not as text: a store that knows the shape compares a segment or
//! two per leaf, and writes the dotted text ([`Path::write`], `cpu.cores.3.usage`) only for a
//! leaf it does not know. Writing every path as text cost a fifth of an append
//! (bench/RESULTS.md).
//!
//! Strings, booleans and unit variants (`type`, `countedInTotal`) are not numbers: skipped.
//! `null` (a `None`) is a missing value: no leaf.

use std::fmt::{self, Write as _};

use serde::ser::{self, Serialize, Serializer};

/// A number as the element holds it: integers stay integers, so that they round-trip exactly
/// (`memory.used` is a `u64` of bytes) and are written back as JSON integers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// Any unsigned integer field.
    Unsigned(u64),
    /// Any signed integer field.
    Signed(i64),
    /// Any float field (never NaN or infinite in the element).
    Float(f64),
}

impl Number {
    /// The value as a float (integers over 2^53 rounded).
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Unsigned(v) => v as f64,
            Number::Signed(v) => v as f64,
            Number::Float(v) => v,
        }
    }
}

/// One segment of a path. Comparing two is a pointer or an integer comparison in the common
/// case; [`Segment::same`] says whether two name the same text.
#[derive(Debug, Clone, Copy)]
pub enum Segment {
    /// A struct field or an enum variant, by its wire name.
    Field(&'static str),
    /// An array (or tuple) item, by position.
    Index(usize),
    /// A map entry: its key's text is bytes `start..end` of the key text kept beside the
    /// segments (the walk's [`Path`], or whoever copied the segment: [`Segment::copy_to`]).
    Key {
        /// Where the key's text starts.
        start: u32,
        /// Where it ends.
        end: u32,
    },
}

impl Segment {
    /// Whether `self` (its key text in `keys`) writes the same text as `other` (its key text in
    /// `other_keys`). A field and a key of the same text, or an index and a key of its digits,
    /// are told apart (false): a caller that finds no match looks the written path up.
    #[inline(always)]
    pub fn same(self, keys: &str, other: Segment, other_keys: &str) -> bool {
        match (self, other) {
            // The walk hands over the derive's own `&'static str`: the same field is usually
            // the same pointer, and the text is compared only when it is not.
            (Segment::Field(a), Segment::Field(b)) => std::ptr::eq(a, b) || a == b,
            (Segment::Index(a), Segment::Index(b)) => a == b,
            (Segment::Key { .. }, Segment::Key { .. }) => {
                self.key_text(keys) == other.key_text(other_keys)
            }
            _ => false,
        }
    }

    /// Whether `self` and `other` are the same field (the same `&'static str`, pointer and
    /// length) or the same index: the comparison a leaf of an unchanged shape needs. False
    /// tells nothing ([`Segment::same`] compares text).
    #[inline(always)]
    pub fn same_fast(self, other: Segment) -> bool {
        match (self, other) {
            (Segment::Field(a), Segment::Field(b)) => std::ptr::eq(a, b),
            (Segment::Index(a), Segment::Index(b)) => a == b,
            _ => false,
        }
    }

    /// The text of a key segment (empty for a segment that is not one, or out of `keys`).
    fn key_text(self, keys: &str) -> &str {
        match self {
            Segment::Key { start, end } => keys.get(start as usize..end as usize).unwrap_or(""),
            _ => "",
        }
    }

    /// `self` with its key text (in `keys`) appended to `to_keys`: the segment as kept by
    /// someone who keeps its own key text.
    pub fn copy_to(self, keys: &str, to_keys: &mut String) -> Segment {
        match self {
            Segment::Key { .. } => {
                let start = to_keys.len() as u32;
                to_keys.push_str(self.key_text(keys));
                Segment::Key {
                    start,
                    end: to_keys.len() as u32,
                }
            }
            other => other,
        }
    }

    /// Appends the segment's text (its key text in `keys`) to `out`.
    pub fn write(self, keys: &str, out: &mut String) {
        match self {
            Segment::Field(name) => out.push_str(name),
            Segment::Index(index) => {
                // Formatting into a `String` cannot fail.
                let _ = write!(out, "{index}");
            }
            Segment::Key { .. } => out.push_str(self.key_text(keys)),
        }
    }
}

/// Where the walk is: the segments of the current value's path, the text of its map keys, and
/// how many leading segments are as they were at the previous leaf. Kept by the caller between
/// walks so that a walk allocates nothing once the buffers are as deep as the value.
#[derive(Debug, Default)]
pub struct Path {
    /// The segments, outermost first; each compound pushes one and cuts it back.
    segments: Vec<Segment>,
    /// The text of the `Key` segments in `segments`, in order.
    keys: String,
    /// How many leading segments are those of the previous leaf's path, untouched since (the
    /// shallowest the path was cut back to; 0 for the first leaf).
    unchanged: usize,
}

impl Path {
    /// The segments, outermost first.
    #[inline(always)]
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The text of this path's key segments (for [`Segment::same`], [`Segment::copy_to`]).
    #[inline(always)]
    pub fn keys(&self) -> &str {
        &self.keys
    }

    /// How many leading segments are those of the previous leaf in this walk, untouched since
    /// (0 for the first leaf): only the others can differ from the previous leaf's.
    #[inline(always)]
    pub fn unchanged(&self) -> usize {
        self.unchanged
    }

    /// Appends the dotted path (`cpu.cores.3.usage`) to `out`.
    pub fn write(&self, out: &mut String) {
        for (i, segment) in self.segments.iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            segment.write(&self.keys, out);
        }
    }

    /// Whether the dotted path is `name`, a name without a dot (a single segment: the join of
    /// two or more always has one).
    #[inline(always)]
    pub fn is_top(&self, name: &str) -> bool {
        match self.segments.as_slice() {
            [Segment::Field(field)] => *field == name,
            [key @ Segment::Key { .. }] => key.key_text(&self.keys) == name,
            [Segment::Index(_)] => {
                let mut text = String::new();
                self.write(&mut text);
                text == name
            }
            _ => false,
        }
    }

    /// Bytes on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.segments.capacity() * std::mem::size_of::<Segment>() + self.keys.capacity()
    }

    /// The dotted path as a new `String` (tests, messages).
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }
}

/// Receives the leaves of one flattened value, in the order the value serialises them (the
/// same order every time for the same shape, which [`super::store`] uses to find each
/// series without hashing its path).
pub trait Leaves {
    /// One number at `path`.
    fn leaf(&mut self, path: &Path, value: Number);
}

/// Why a value could not be walked. serde requires an error type; the element never fails
/// (it has no maps with non-string keys), so this carries serde's message only. A `Box<str>`,
/// not a `String`: every serialize call of the walk returns a `Result<(), FlattenError>`,
/// which fits in two registers this way instead of being written to and read from memory.
#[derive(Debug, thiserror::Error)]
#[error("flattening a value for history: {0}")]
pub struct FlattenError(Box<str>);

impl ser::Error for FlattenError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        FlattenError(msg.to_string().into())
    }
}

/// Calls `leaves.leaf` for every number of `value`, reusing `path`'s buffers (kept by the
/// caller between samples so that nothing is allocated).
pub fn flatten<T: Serialize + ?Sized, L: Leaves>(
    value: &T,
    path: &mut Path,
    leaves: &mut L,
) -> Result<(), FlattenError> {
    path.segments.clear();
    path.keys.clear();
    path.unchanged = 0;
    let mut walker = Walker { path, leaves };
    value.serialize(&mut walker)
}

/// The serde serializer: `path` is the path of the value being serialised.
struct Walker<'a, L> {
    /// The current path.
    path: &'a mut Path,
    /// Where numbers go.
    leaves: &'a mut L,
}

impl<L: Leaves> Walker<'_, L> {
    #[inline(always)]
    fn number(&mut self, value: Number) -> Result<(), FlattenError> {
        self.leaves.leaf(self.path, value);
        self.path.unchanged = self.path.segments.len();
        Ok(())
    }

    /// Cuts the path back to `depth` segments (what it was before a segment was pushed).
    #[inline(always)]
    fn cut(&mut self, depth: usize) {
        self.path.segments.truncate(depth);
        self.path.unchanged = self.path.unchanged.min(depth);
    }

    /// Serialises `value` under the segment `segment`.
    #[inline(always)]
    fn under<T: Serialize + ?Sized>(
        &mut self,
        segment: Segment,
        value: &T,
    ) -> Result<(), FlattenError> {
        let depth = self.path.segments.len();
        self.path.segments.push(segment);
        value.serialize(&mut *self)?;
        self.cut(depth);
        Ok(())
    }

    /// Starts a sequence: its items' segment is pushed once, as the item before the first
    /// (`usize::MAX`, which the first item wraps to 0), and each item advances it in place.
    #[inline(always)]
    fn start_items(&mut self) {
        self.path.segments.push(Segment::Index(usize::MAX));
    }

    /// Serialises the next item of the sequence whose segment is the last one.
    #[inline(always)]
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FlattenError> {
        let depth = self.path.segments.len();
        if let Some(Segment::Index(index)) = self.path.segments.last_mut() {
            *index = index.wrapping_add(1);
        }
        self.path.unchanged = self.path.unchanged.min(depth.saturating_sub(1));
        // The item leaves the path as it found it (every compound cuts back what it pushed).
        value.serialize(&mut *self)
    }

    /// Ends a sequence: drops its items' segment.
    #[inline(always)]
    fn end_items(&mut self) -> Result<(), FlattenError> {
        let depth = self.path.segments.len().saturating_sub(1);
        self.cut(depth);
        Ok(())
    }
}

macro_rules! numbers {
    ($($method:ident($ty:ty) => $variant:ident as $as:ty),* $(,)?) => {
        $(fn $method(self, v: $ty) -> Result<(), FlattenError> {
            self.number(Number::$variant(v as $as))
        })*
    };
}

impl<L: Leaves> Serializer for &mut Walker<'_, L> {
    type Ok = ();
    type Error = FlattenError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    numbers! {
        serialize_u8(u8) => Unsigned as u64,
        serialize_u16(u16) => Unsigned as u64,
        serialize_u32(u32) => Unsigned as u64,
        serialize_u64(u64) => Unsigned as u64,
        serialize_i8(i8) => Signed as i64,
        serialize_i16(i16) => Signed as i64,
        serialize_i32(i32) => Signed as i64,
        serialize_i64(i64) => Signed as i64,
        serialize_f32(f32) => Float as f64,
        serialize_f64(f64) => Float as f64,
    }

    fn serialize_bool(self, _: bool) -> Result<(), FlattenError> {
        Ok(())
    }
    fn serialize_char(self, _: char) -> Result<(), FlattenError> {
        Ok(())
    }
    fn serialize_str(self, _: &str) -> Result<(), FlattenError> {
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), FlattenError> {
        Ok(())
    }
    fn serialize_none(self) -> Result<(), FlattenError> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), FlattenError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), FlattenError> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), FlattenError> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), FlattenError> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), FlattenError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), FlattenError> {
        self.under(Segment::Field(variant), value)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, FlattenError> {
        self.start_items();
        Ok(self)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self, FlattenError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Self, FlattenError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        len: usize,
    ) -> Result<Self, FlattenError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, FlattenError> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, FlattenError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, FlattenError> {
        Ok(self)
    }
}

impl<L: Leaves> ser::SerializeSeq for &mut Walker<'_, L> {
    type Ok = ();
    type Error = FlattenError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FlattenError> {
        self.item(value)
    }
    fn end(self) -> Result<(), FlattenError> {
        self.end_items()
    }
}

impl<L: Leaves> ser::SerializeTuple for &mut Walker<'_, L> {
    type Ok = ();
    type Error = FlattenError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FlattenError> {
        self.item(value)
    }
    fn end(self) -> Result<(), FlattenError> {
        self.end_items()
    }
}

impl<L: Leaves> ser::SerializeTupleStruct for &mut Walker<'_, L> {
    type Ok = ();
    type Error = FlattenError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FlattenError> {
        self.item(value)
    }
    fn end(self) -> Result<(), FlattenError> {
        self.end_items()
    }
}

impl<L: Leaves> ser::SerializeTupleVariant for &mut Walker<'_, L> {
    type Ok = ();
    type Error = FlattenError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FlattenError> {
        self.item(value)
    }
    fn end(self) -> Result<(), FlattenError> {
        self.end_items()
    }
}

impl<L: Leaves> ser::SerializeStruct for &mut Walker<'_, L> {
    type Ok = ();
    type Error = FlattenError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), FlattenError> {
        self.under(Segment::Field(key), value)
    }
    fn end(self) -> Result<(), FlattenError> {
        Ok(())
    }
}

impl<L: Leaves> ser::SerializeStructVariant for &mut Walker<'_, L> {
    type Ok = ();
    type Error = FlattenError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), FlattenError> {
        self.under(Segment::Field(key), value)
    }
    fn end(self) -> Result<(), FlattenError> {
        Ok(())
    }
}

/// Map keys become path segments: a map's entries are named by their (string) keys, as a
/// plugin's `custom` object would be. A key that is not a string or a number is refused.
impl<L: Leaves> ser::SerializeMap for &mut Walker<'_, L> {
    type Ok = ();
    type Error = FlattenError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), FlattenError> {
        let start = self.path.keys.len();
        key.serialize(KeyText(&mut self.path.keys))?;
        // The value follows, under this segment; `serialize_value` cuts it back.
        self.path.segments.push(Segment::Key {
            start: start as u32,
            end: self.path.keys.len() as u32,
        });
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FlattenError> {
        value.serialize(&mut **self)?;
        if let Some(Segment::Key { start, .. }) = self.path.segments.last().copied() {
            self.path.keys.truncate(start as usize);
            let depth = self.path.segments.len() - 1;
            self.cut(depth);
        }
        Ok(())
    }
    fn end(self) -> Result<(), FlattenError> {
        Ok(())
    }
}

/// Writes a map key's text.
struct KeyText<'a>(&'a mut String);

impl KeyText<'_> {
    fn text(self, text: impl fmt::Display) -> Result<(), FlattenError> {
        // Formatting into a `String` cannot fail.
        let _ = write!(self.0, "{text}");
        Ok(())
    }
}

impl Serializer for KeyText<'_> {
    type Ok = ();
    type Error = FlattenError;
    type SerializeSeq = ser::Impossible<(), FlattenError>;
    type SerializeTuple = ser::Impossible<(), FlattenError>;
    type SerializeTupleStruct = ser::Impossible<(), FlattenError>;
    type SerializeTupleVariant = ser::Impossible<(), FlattenError>;
    type SerializeMap = ser::Impossible<(), FlattenError>;
    type SerializeStruct = ser::Impossible<(), FlattenError>;
    type SerializeStructVariant = ser::Impossible<(), FlattenError>;

    fn serialize_str(self, v: &str) -> Result<(), FlattenError> {
        self.0.push_str(v);
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), FlattenError> {
        self.text(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), FlattenError> {
        self.text(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), FlattenError> {
        self.text(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), FlattenError> {
        self.text(v)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), FlattenError> {
        self.0.push_str(variant);
        Ok(())
    }
    fn serialize_bool(self, _: bool) -> Result<(), FlattenError> {
        Err(not_a_key())
    }
    fn serialize_i8(self, v: i8) -> Result<(), FlattenError> {
        self.text(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), FlattenError> {
        self.text(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), FlattenError> {
        self.text(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), FlattenError> {
        self.text(v)
    }
    fn serialize_f32(self, _: f32) -> Result<(), FlattenError> {
        Err(not_a_key())
    }
    fn serialize_f64(self, _: f64) -> Result<(), FlattenError> {
        Err(not_a_key())
    }
    fn serialize_char(self, v: char) -> Result<(), FlattenError> {
        self.0.push(v);
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), FlattenError> {
        Err(not_a_key())
    }
    fn serialize_none(self) -> Result<(), FlattenError> {
        Err(not_a_key())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), FlattenError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), FlattenError> {
        Err(not_a_key())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), FlattenError> {
        Err(not_a_key())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), FlattenError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), FlattenError> {
        Err(not_a_key())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, FlattenError> {
        Err(not_a_key())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, FlattenError> {
        Err(not_a_key())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, FlattenError> {
        Err(not_a_key())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, FlattenError> {
        Err(not_a_key())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, FlattenError> {
        Err(not_a_key())
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, FlattenError> {
        Err(not_a_key())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, FlattenError> {
        Err(not_a_key())
    }
}

fn not_a_key() -> FlattenError {
    FlattenError("a map key that is not text or an integer".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Each leaf's dotted path, its segments' texts and its value.
    #[derive(Default)]
    struct Collect(Vec<(String, Vec<String>, Number)>);

    impl Leaves for Collect {
        fn leaf(&mut self, path: &Path, value: Number) {
            let segments: Vec<String> = path
                .segments()
                .iter()
                .map(|s| {
                    let mut text = String::new();
                    s.write(path.keys(), &mut text);
                    text
                })
                .collect();
            // What the walker says is unchanged is the previous leaf's, segment for segment.
            let previous = self.0.last().map_or(&[][..], |(_, s, _)| s.as_slice());
            let unchanged = path.unchanged();
            assert!(
                unchanged <= previous.len().min(segments.len()),
                "{segments:?}"
            );
            assert_eq!(segments[..unchanged], previous[..unchanged]);
            assert_eq!(path.text(), segments.join("."));
            self.0.push((path.text(), segments, value));
        }
    }

    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        used: Option<u64>,
        total: Option<u64>,
        name: &'static str,
    }

    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        overall: f64,
        load_average: [f64; 3],
        items: Vec<Inner>,
        ok: bool,
        custom: BTreeMap<String, f64>,
        delta: i64,
    }

    #[test]
    fn numbers_get_dotted_paths_and_the_rest_is_skipped() {
        let value = Outer {
            overall: 12.5,
            load_average: [1.0, 2.0, 3.0],
            items: vec![
                Inner {
                    used: Some(5),
                    total: None,
                    name: "a",
                },
                Inner {
                    used: None,
                    total: Some(7),
                    name: "b",
                },
            ],
            ok: true,
            custom: BTreeMap::from([("temp{zone=\"a\"}".to_string(), 40.0)]),
            delta: -3,
        };
        let mut leaves = Collect::default();
        let mut path = Path::default();
        flatten(&value, &mut path, &mut leaves).unwrap();
        let got: Vec<(&str, Number)> = leaves.0.iter().map(|(p, _, v)| (p.as_str(), *v)).collect();
        assert_eq!(
            got,
            [
                ("overall", Number::Float(12.5)),
                ("loadAverage.0", Number::Float(1.0)),
                ("loadAverage.1", Number::Float(2.0)),
                ("loadAverage.2", Number::Float(3.0)),
                ("items.0.used", Number::Unsigned(5)),
                ("items.1.total", Number::Unsigned(7)),
                ("custom.temp{zone=\"a\"}", Number::Float(40.0)),
                ("delta", Number::Signed(-3)),
            ]
        );
    }

    #[test]
    fn the_unchanged_prefix_is_all_but_the_last_segment_between_siblings() {
        #[derive(Default)]
        struct Unchanged(Vec<(String, usize)>);
        impl Leaves for Unchanged {
            fn leaf(&mut self, path: &Path, _: Number) {
                self.0.push((path.text(), path.unchanged()));
            }
        }
        let value = BTreeMap::from([
            ("a", vec![[1u8, 2], [3, 4]]),
            ("b", vec![]),
            ("c", vec![[5, 6]]),
        ]);
        let mut leaves = Unchanged::default();
        let mut path = Path::default();
        // Buffers left by an earlier walk are not part of the next one.
        flatten(
            &BTreeMap::from([("stale", [[9u8]])]),
            &mut path,
            &mut leaves,
        )
        .unwrap();
        leaves.0.clear();
        flatten(&value, &mut path, &mut leaves).unwrap();
        let got: Vec<(&str, usize)> = leaves.0.iter().map(|(p, n)| (p.as_str(), *n)).collect();
        assert_eq!(
            got,
            [
                ("a.0.0", 0),
                ("a.0.1", 2),
                ("a.1.0", 1),
                ("a.1.1", 2),
                ("c.0.0", 0),
                ("c.0.1", 2),
            ]
        );
    }

    #[test]
    fn array_indices_past_nine_are_written_whole() {
        let value: Vec<u32> = (0..12).collect();
        let mut leaves = Collect::default();
        flatten(&value, &mut Path::default(), &mut leaves).unwrap();
        assert_eq!(leaves.0[11].0, "11");
        assert_eq!(leaves.0[11].2, Number::Unsigned(11));
        assert_eq!(leaves.0[10].0, "10");
    }

    #[test]
    fn nested_map_keys_keep_their_own_text() {
        let value = BTreeMap::from([
            ("outer", BTreeMap::from([("x", 1u8), ("yy", 2)])),
            ("z", BTreeMap::from([("w", 3)])),
        ]);
        let mut leaves = Collect::default();
        let mut path = Path::default();
        flatten(&value, &mut path, &mut leaves).unwrap();
        let got: Vec<&str> = leaves.0.iter().map(|(p, _, _)| p.as_str()).collect();
        assert_eq!(got, ["outer.x", "outer.yy", "z.w"]);
        // Every key's text was cut back with its segment.
        assert!(path.keys().is_empty() && path.segments().is_empty());
    }

    #[test]
    fn segments_are_the_same_when_their_text_is() {
        let keys = "abcpu";
        let key = |start: u32, end: u32| Segment::Key { start, end };
        let cpu: &'static str = "cpu";
        let owned = String::from("cpu");
        let other: &'static str = owned.leak();
        assert!(Segment::Field(cpu).same("", Segment::Field(other), ""));
        assert!(!Segment::Field(cpu).same("", Segment::Field("cpv"), ""));
        assert!(Segment::Index(3).same("", Segment::Index(3), ""));
        assert!(!Segment::Index(3).same("", Segment::Index(4), ""));
        assert!(key(2, 5).same(keys, key(0, 3), "cpu"));
        assert!(!key(0, 2).same(keys, key(0, 3), "cpu"));
        // Told apart by kind, even with the same text: the caller then looks the text up.
        assert!(!key(2, 5).same(keys, Segment::Field(cpu), ""));
        let mut copied = String::from("x");
        let moved = key(2, 5).copy_to(keys, &mut copied);
        assert_eq!(copied, "xcpu");
        assert!(moved.same(&copied, Segment::Key { start: 0, end: 3 }, "cpu"));
    }

    #[test]
    fn a_top_level_name_is_one_segment_of_that_text() {
        #[derive(Default)]
        struct Tops(BTreeMap<String, bool>);
        impl Leaves for Tops {
            fn leaf(&mut self, path: &Path, _: Number) {
                self.0.insert(path.text(), path.is_top("timestamp"));
            }
        }
        let value = serde_json::json!({"timestamp": 1, "a": {"timestamp": 2}, "b": [3]});
        let mut tops = Tops::default();
        flatten(&value, &mut Path::default(), &mut tops).unwrap();
        let want = [("a.timestamp", false), ("b.0", false), ("timestamp", true)];
        assert_eq!(tops.0, want.map(|(p, t)| (p.to_string(), t)).into());
        let mut tops = Tops::default();
        flatten(&[5u8], &mut Path::default(), &mut tops).unwrap();
        assert_eq!(tops.0, [("0".to_string(), false)].into());
    }
}
