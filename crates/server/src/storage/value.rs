//! Values of every data type. Each type's data structure lives in its own module next to
//! this one as types are added; `Value` is the closed set the keyspace stores.

/// A stored value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string (also integers: Redis keeps those as strings with the `int` encoding).
    Str(Vec<u8>),
}

impl Value {
    /// Redis's `TYPE` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
        }
    }

    /// Redis's `OBJECT ENCODING` name for values that are not inline strings.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) if s.len() <= 44 => "embstr",
            Value::Str(_) => "raw",
        }
    }

    /// Heap bytes owned by the value.
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.capacity(),
        }
    }
}
