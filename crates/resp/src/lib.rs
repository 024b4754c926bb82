//! RESP2/RESP3 wire format for Kiln.
//!
//! This crate knows bytes and frames only: no sockets, no runtime, no server state
//! (the same one-way rule Dragonfly's `facade` follows).
//!
//! * [`request`]: the server-side parser. Clients send arrays of bulk strings (or inline
//!   commands typed by a person); it parses one complete request out of a buffer without
//!   copying, or says more bytes are needed, and resumes where it stopped when more arrive. Declared lengths never allocate: memory is only
//!   ever proportional to the bytes that actually arrived.
//! * [`encode`]: appends reply frames to an output buffer.
//! * [`decode`]: a complete RESP3 decoder for the client side (kiln-cli, replication links,
//!   tests).

pub mod decode;
pub mod encode;
pub mod request;

pub use decode::{decode, DecodeError, Value};
pub use request::{parse_request, Limits, ParseError, Parsed, RequestParser};
