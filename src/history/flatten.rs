//! Every number of a value that implements `Serialize` (the `/api/system/metrics` element), as
//! (dotted path, number) leaves: struct fields by their wire names, array items by position,
//! map entries by key. Walks the value with a serde [`Serializer`] — no JSON is written — so
//! the paths are exactly the element's JSON names and a field added to the element is kept
//! without a line here.
//!
//! Strings, booleans and unit variants (`type`, `countedInTotal`) are not numbers: skipped.
//! `null` (a `None`) is a missing value: no leaf.

use std::fmt;

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

/// Receives the leaves of one flattened value, in the order the value serialises them (the
/// same order every time for the same shape, which [`super::store`] uses to find each
/// series without hashing its path).
pub trait Leaves {
    /// One number at `path` (e.g. `cpu.cores.3.usage`). The first `unchanged` bytes of `path`
    /// are those of the previous leaf's path in this walk, unchanged since (0 for the first
    /// leaf): the rest is what the walk wrote since, usually the last segment.
    fn leaf(&mut self, path: &str, unchanged: usize, value: Number);
}

/// Why a value could not be walked. serde requires an error type; the element never fails
/// (it has no maps with non-string keys), so this carries serde's message only.
#[derive(Debug, thiserror::Error)]
#[error("flattening a value for history: {0}")]
pub struct FlattenError(String);

impl ser::Error for FlattenError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        FlattenError(msg.to_string())
    }
}

/// Calls `leaves.leaf` for every number of `value`, reusing `path` as the buffer of the
/// current path (kept by the caller between samples so that no path is allocated).
pub fn flatten<T: Serialize + ?Sized, L: Leaves>(
    value: &T,
    path: &mut String,
    leaves: &mut L,
) -> Result<(), FlattenError> {
    path.clear();
    let mut walker = Walker {
        path,
        leaves,
        items: Vec::new(),
        unchanged: 0,
    };
    value.serialize(&mut walker)
}

/// The serde serializer: `path` holds the dotted path of the value being serialised.
struct Walker<'a, L> {
    /// The current path; each compound pushes a segment and truncates it back.
    path: &'a mut String,
    /// Where numbers go.
    leaves: &'a mut L,
    /// For each open sequence, the path length before its items and the next item's index.
    items: Vec<(usize, usize)>,
    /// How much of `path` is as it was at the last leaf: the shortest it was cut to since.
    unchanged: usize,
}

impl<L: Leaves> Walker<'_, L> {
    #[inline(always)]
    fn number(&mut self, value: Number) -> Result<(), FlattenError> {
        self.leaves.leaf(self.path, self.unchanged, value);
        self.unchanged = self.path.len();
        Ok(())
    }

    /// Cuts the path back to `len` bytes (what it was before a segment was pushed).
    #[inline(always)]
    fn cut(&mut self, len: usize) {
        self.path.truncate(len);
        self.unchanged = self.unchanged.min(len);
    }

    /// Appends `.segment` (or `segment` at the root); returns the length to truncate back to.
    #[inline(always)]
    fn push(&mut self, segment: &str) -> usize {
        let before = self.path.len();
        if before > 0 {
            self.path.push('.');
        }
        self.path.push_str(segment);
        before
    }

    #[inline(always)]
    fn push_index(&mut self) -> usize {
        let (_, index) = self.items.last().copied().unwrap_or((0, 0));
        if let Some(last) = self.items.last_mut() {
            last.1 += 1;
        }
        let before = self.path.len();
        if before > 0 {
            self.path.push('.');
        }
        // Small integers without formatting machinery: this runs for every array item.
        if index < 10 {
            self.path.push(char::from(b'0' + index as u8));
            return before;
        }
        let mut digits = [0u8; 20];
        let mut n = index;
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &d in &digits[at..] {
            self.path.push(char::from(d));
        }
        before
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
        let before = self.push(variant);
        value.serialize(&mut *self)?;
        self.cut(before);
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, FlattenError> {
        self.items.push((self.path.len(), 0));
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

impl<L: Leaves> Walker<'_, L> {
    #[inline(always)]
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FlattenError> {
        let before = self.push_index();
        value.serialize(&mut *self)?;
        self.cut(before);
        Ok(())
    }

    fn end_items(&mut self) -> Result<(), FlattenError> {
        if let Some((len, _)) = self.items.pop() {
            self.cut(len);
        }
        Ok(())
    }

    #[inline(always)]
    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), FlattenError> {
        let before = self.push(key);
        value.serialize(&mut *self)?;
        self.cut(before);
        Ok(())
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
        self.field(key, value)
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
        self.field(key, value)
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
        let key = key.serialize(KeyText)?;
        let before = self.push(&key);
        // The value follows: remember where to cut back to after it.
        self.items.push((before, usize::MAX));
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FlattenError> {
        value.serialize(&mut **self)?;
        if let Some((before, _)) = self.items.pop() {
            self.cut(before);
        }
        Ok(())
    }
    fn end(self) -> Result<(), FlattenError> {
        Ok(())
    }
}

/// A map key as text.
struct KeyText;

impl Serializer for KeyText {
    type Ok = String;
    type Error = FlattenError;
    type SerializeSeq = ser::Impossible<String, FlattenError>;
    type SerializeTuple = ser::Impossible<String, FlattenError>;
    type SerializeTupleStruct = ser::Impossible<String, FlattenError>;
    type SerializeTupleVariant = ser::Impossible<String, FlattenError>;
    type SerializeMap = ser::Impossible<String, FlattenError>;
    type SerializeStruct = ser::Impossible<String, FlattenError>;
    type SerializeStructVariant = ser::Impossible<String, FlattenError>;

    fn serialize_str(self, v: &str) -> Result<String, FlattenError> {
        Ok(v.to_string())
    }
    fn serialize_u64(self, v: u64) -> Result<String, FlattenError> {
        Ok(v.to_string())
    }
    fn serialize_i64(self, v: i64) -> Result<String, FlattenError> {
        Ok(v.to_string())
    }
    fn serialize_u32(self, v: u32) -> Result<String, FlattenError> {
        Ok(v.to_string())
    }
    fn serialize_i32(self, v: i32) -> Result<String, FlattenError> {
        Ok(v.to_string())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, FlattenError> {
        Ok(variant.to_string())
    }
    fn serialize_bool(self, _: bool) -> Result<String, FlattenError> {
        Err(not_a_key())
    }
    fn serialize_i8(self, v: i8) -> Result<String, FlattenError> {
        Ok(v.to_string())
    }
    fn serialize_i16(self, v: i16) -> Result<String, FlattenError> {
        Ok(v.to_string())
    }
    fn serialize_u8(self, v: u8) -> Result<String, FlattenError> {
        Ok(v.to_string())
    }
    fn serialize_u16(self, v: u16) -> Result<String, FlattenError> {
        Ok(v.to_string())
    }
    fn serialize_f32(self, _: f32) -> Result<String, FlattenError> {
        Err(not_a_key())
    }
    fn serialize_f64(self, _: f64) -> Result<String, FlattenError> {
        Err(not_a_key())
    }
    fn serialize_char(self, v: char) -> Result<String, FlattenError> {
        Ok(v.to_string())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String, FlattenError> {
        Err(not_a_key())
    }
    fn serialize_none(self) -> Result<String, FlattenError> {
        Err(not_a_key())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<String, FlattenError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<String, FlattenError> {
        Err(not_a_key())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, FlattenError> {
        Err(not_a_key())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<String, FlattenError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, FlattenError> {
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

    #[derive(Default)]
    struct Collect(Vec<(String, Number)>);

    impl Leaves for Collect {
        fn leaf(&mut self, path: &str, unchanged: usize, value: Number) {
            // What the walker says is unchanged is the previous leaf's path, byte for byte.
            let previous = self.0.last().map_or("", |(p, _)| p.as_str());
            assert!(unchanged <= previous.len().min(path.len()), "{path}");
            assert_eq!(path[..unchanged], previous[..unchanged], "{path}");
            self.0.push((path.to_string(), value));
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
        let mut path = String::new();
        flatten(&value, &mut path, &mut leaves).unwrap();
        let got: Vec<(&str, Number)> = leaves.0.iter().map(|(p, v)| (p.as_str(), *v)).collect();
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
            fn leaf(&mut self, path: &str, unchanged: usize, _: Number) {
                self.0.push((path.to_string(), unchanged));
            }
        }
        let value = BTreeMap::from([
            ("a", vec![[1u8, 2], [3, 4]]),
            ("b", vec![]),
            ("c", vec![[5, 6]]),
        ]);
        let mut leaves = Unchanged::default();
        let mut path = String::from("stale.path");
        flatten(&value, &mut path, &mut leaves).unwrap();
        let got: Vec<(&str, usize)> = leaves.0.iter().map(|(p, n)| (p.as_str(), *n)).collect();
        assert_eq!(
            got,
            [
                ("a.0.0", 0),
                ("a.0.1", 3),
                ("a.1.0", 1),
                ("a.1.1", 3),
                ("c.0.0", 0),
                ("c.0.1", 3),
            ]
        );
    }

    #[test]
    fn array_indices_past_nine_are_written_whole() {
        let value: Vec<u32> = (0..12).collect();
        let mut leaves = Collect::default();
        let mut path = String::from("stale");
        flatten(&value, &mut path, &mut leaves).unwrap();
        assert_eq!(leaves.0[11], ("11".to_string(), Number::Unsigned(11)));
        assert_eq!(leaves.0[10].0, "10");
    }
}
