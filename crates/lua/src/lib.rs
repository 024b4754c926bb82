//! The libraries Redis 7.0 loads into its Lua 5.1 interpreter besides the standard ones:
//! `cjson`, `cmsgpack`, `bit` (LuaBitOp) and `struct`. Each module registers one global
//! table with the functions, limits and error texts Redis's scripts see.
//!
//! Kiln's scripting engine (in kiln-server) calls [`register_all`] on each interpreter it
//! makes, before it protects the globals.

pub mod bit;
pub mod cjson;
pub mod cmsgpack;
pub mod structlib;

use mlua::Lua;

/// Registers every library as the global Redis gives it (`cjson`, `cmsgpack`, `bit`,
/// `struct`).
pub fn register_all(lua: &Lua) -> mlua::Result<()> {
    cjson::register(lua)?;
    cmsgpack::register(lua)?;
    bit::register(lua)?;
    structlib::register(lua)?;
    Ok(())
}
