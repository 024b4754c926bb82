//! Every error text a client can see, in one place.
//!
//! Client libraries and test suites match on these strings, so each is Redis 7's exact text.
//! Handlers return `Err(CommandError)`; the dispatcher writes it as `-<text>\r\n`.

use std::borrow::Cow;
use std::fmt;

pub const WRONG_TYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const SYNTAX: &str = "ERR syntax error";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const DB_INDEX: &str = "ERR DB index is out of range";
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const AUTH_NOT_CONFIGURED: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const OFFSET_RANGE: &str = "ERR offset is out of range";
pub const NAN_OR_INF: &str = "ERR increment would produce NaN or Infinity";
pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
pub const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
pub const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
pub const NOPROTO: &str = "NOPROTO unsupported protocol version";
pub const CLIENT_NAME: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";
pub const NO_SUCH_CLIENT: &str = "ERR No such client";

/// A command failed; the text is what the client receives (without the leading `-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// A fixed Redis error text.
    Static(&'static str),
    /// A formatted error text (must start with the error code, e.g. `ERR `).
    Owned(String),
}

pub use CommandError::Static as E;

impl CommandError {
    pub fn wrong_type() -> Self {
        E(WRONG_TYPE)
    }
    pub fn not_integer() -> Self {
        E(NOT_INTEGER)
    }
    pub fn syntax() -> Self {
        E(SYNTAX)
    }

    /// `ERR wrong number of arguments for 'get' command`
    pub fn arity(fullname: &str) -> Self {
        Self::Owned(format!(
            "ERR wrong number of arguments for '{fullname}' command"
        ))
    }

    /// `ERR unknown command 'foo', with args beginning with: 'a' 'b' `
    pub fn unknown_command(args: &[&[u8]]) -> Self {
        let name = String::from_utf8_lossy(&args[0][..args[0].len().min(128)]);
        let mut rest = String::new();
        for a in &args[1..] {
            if rest.len() >= 128 {
                break;
            }
            let room = 128 - rest.len();
            let a = String::from_utf8_lossy(&a[..a.len().min(room)]);
            rest.push('\'');
            rest.push_str(&a);
            rest.push_str("' ");
        }
        Self::Owned(format!(
            "ERR unknown command '{name}', with args beginning with: {rest}"
        ))
    }

    /// `ERR unknown subcommand 'foo'. Try CONFIG HELP.`
    pub fn unknown_subcommand(cmd: &[u8], sub: &[u8]) -> Self {
        let sub = String::from_utf8_lossy(&sub[..sub.len().min(128)]);
        Self::Owned(format!(
            "ERR unknown subcommand '{sub}'. Try {} HELP.",
            crate::util::upper(cmd)
        ))
    }

    /// `ERR invalid expire time in 'set' command`
    pub fn invalid_expire(cmd: &str) -> Self {
        Self::Owned(format!("ERR invalid expire time in '{cmd}' command"))
    }

    /// Any `ERR <msg>` text.
    pub fn err(msg: impl Into<Cow<'static, str>>) -> Self {
        match msg.into() {
            Cow::Borrowed(s) => Self::Owned(format!("ERR {s}")),
            Cow::Owned(s) => Self::Owned(format!("ERR {s}")),
        }
    }

    /// The text sent to the client.
    pub fn text(&self) -> &str {
        match self {
            Self::Static(s) => s,
            Self::Owned(s) => s,
        }
    }

    /// The error code: the first word (`ERR`, `WRONGTYPE`, ...), for errorstats.
    pub fn code(&self) -> &str {
        self.text().split(' ').next().unwrap_or("ERR")
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl std::error::Error for CommandError {}

/// Result of a command handler.
pub type CmdResult = Result<(), CommandError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_text_matches_redis() {
        let e = CommandError::unknown_command(&[b"foo", b"a", b"b"]);
        assert_eq!(
            e.text(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        let e = CommandError::unknown_command(&[b"foo"]);
        assert_eq!(e.text(), "ERR unknown command 'foo', with args beginning with: ");
    }
}
