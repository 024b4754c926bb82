//! Placeholder: filled in by the `structlib` library work.

use mlua::Lua;

/// Registers the library's global table.
pub fn register(_lua: &Lua) -> mlua::Result<()> {
    Ok(())
}
