//! The append-only file's formats: the multi-part layout's manifest, and the commands of
//! each file.

pub mod manifest;
pub mod reader;
