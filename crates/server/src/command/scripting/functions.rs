//! Functions: FUNCTION LOAD / DELETE / FLUSH / LIST / DUMP / RESTORE / STATS / KILL / HELP,
//! FCALL and FCALL_RO.
//!
//! The library registry ([`Libraries`]) is the one truth: each library's code, name and the
//! functions it registered (with their flags and descriptions). Interpreters hold compiled
//! callbacks only as a cache: a thread's interpreter re-runs every library's code when the
//! registry's generation moved since it last did (`Vm::functions`), so a library loaded on
//! one thread is callable on all of them, and one deleted is gone everywhere.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::engine::{self, Registered};
use super::{api, ScriptFlags};
use crate::command::Ctx;
use crate::error::{CmdResult, CommandError};
use crate::server::Server;

/// A loaded library.
pub struct Library {
    pub name: String,
    /// The whole code, shebang included, as FUNCTION LIST WITHCODE and DUMP give it.
    pub code: Box<[u8]>,
    pub functions: Vec<FunctionInfo>,
}

/// A function a library registered.
pub struct FunctionInfo {
    pub name: String,
    pub description: Option<Vec<u8>>,
    pub flags: ScriptFlags,
    /// How it has fared speculating (`atomic`).
    pub streak: super::atomic::Streak,
}

/// Every library, by name; every function, by name, to its library.
#[derive(Default, Clone)]
pub struct Libraries {
    libs: BTreeMap<String, Arc<Library>>,
    by_function: BTreeMap<String, (Arc<Library>, usize)>,
    /// Bumped by every change: interpreters re-run the libraries' code when it moved.
    pub generation: u64,
}

impl Libraries {
    pub fn get(&self, name: &str) -> Option<&Arc<Library>> {
        self.libs.get(name)
    }

    /// The library and index of function `name`.
    pub fn function(&self, name: &str) -> Option<(Arc<Library>, usize)> {
        self.by_function.get(name).cloned()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Library>> {
        self.libs.values()
    }

    pub fn len(&self) -> usize {
        self.libs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.libs.is_empty()
    }

    pub fn function_count(&self) -> usize {
        self.by_function.len()
    }

    /// Adds `lib` (replacing the library of the same name if `replace`). `Err`: Redis's text.
    fn add(&mut self, lib: Library, replace: bool) -> Result<(), String> {
        if self.libs.contains_key(&lib.name) && !replace {
            return Err(format!("ERR Library '{}' already exists", lib.name));
        }
        for f in &lib.functions {
            if let Some((owner, _)) = self.by_function.get(&f.name) {
                if owner.name != lib.name {
                    return Err(format!("ERR Function {} already exists", f.name));
                }
            }
        }
        self.remove(&lib.name.clone());
        let lib = Arc::new(lib);
        for (i, f) in lib.functions.iter().enumerate() {
            self.by_function.insert(f.name.clone(), (lib.clone(), i));
        }
        self.libs.insert(lib.name.clone(), lib);
        self.generation += 1;
        Ok(())
    }

    fn remove(&mut self, name: &str) -> bool {
        let Some(lib) = self.libs.remove(name) else {
            return false;
        };
        for f in &lib.functions {
            self.by_function.remove(&f.name);
        }
        self.generation += 1;
        true
    }

    /// Removes every library.
    pub fn clear(&mut self) {
        self.libs.clear();
        self.by_function.clear();
        self.generation += 1;
    }

    /// The code of every library, by name (what RDB files and FUNCTION DUMP carry).
    pub fn codes(&self) -> Vec<Vec<u8>> {
        self.libs.values().map(|l| l.code.to_vec()).collect()
    }
}

/// The library name a code's shebang gives (`#!lua name=<lib>`), and the code Lua compiles
/// (the shebang line blanked, so line numbers stay). `Err`: Redis's text.
fn metadata(code: &[u8]) -> Result<(String, Vec<u8>), String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    // The shebang is a line: code without a newline has none (whatever it says).
    let Some(end) = code.iter().position(|&b| b == b'\n') else {
        return Err("ERR Invalid library metadata".into());
    };
    let line = String::from_utf8_lossy(&code[2..end]).into_owned();
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or("");
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{engine}' not found"));
    }
    let mut name = None;
    for p in parts {
        match p.strip_prefix("name=") {
            Some(n) if name.is_none() => name = Some(n.to_string()),
            Some(_) => {
                return Err(
                    "ERR Invalid metadata value, name argument was given multiple times".into(),
                )
            }
            None => return Err(format!("ERR Invalid metadata value given: {p}")),
        }
    }
    let Some(name) = name else {
        return Err("ERR Library name was not given".into());
    };
    if !api::valid_name(name.as_bytes()) {
        return Err(api::BAD_NAME.into());
    }
    Ok((name, code[end..].to_vec()))
}

/// Compiles and runs a library's code on this thread's interpreter, returning the library
/// it describes. Nothing is registered yet.
fn compile(server: &Server, code: &[u8]) -> Result<Library, String> {
    let (name, body) = metadata(code)?;
    let generation = server.scripts.generation.load(Relaxed);
    let registered: Vec<Registered> = engine::with_vm(generation, |vm| vm.load_library(&body))
        .map_err(|e| format!("ERR {e}"))??;
    Ok(Library {
        name,
        code: code.into(),
        functions: registered
            .into_iter()
            .map(|r| FunctionInfo {
                name: r.name,
                description: r.description,
                flags: r.flags,
                streak: Default::default(),
            })
            .collect(),
    })
}

/// Loads a library into the registry (FUNCTION LOAD; an RDB file's library, as
/// [`restore`]).
pub fn load(server: &Server, code: &[u8], replace: bool) -> Result<String, String> {
    let lib = compile(server, code)?;
    let name = lib.name.clone();
    server.scripts.libraries.write().add(lib, replace)?;
    Ok(name)
}

/// A library an RDB file carries (start-up, DEBUG RELOAD, a full sync, an AOF's RDB base):
/// created as FUNCTION LOAD would, an error if it exists.
pub fn restore(server: &Server, code: &[u8]) -> Result<(), String> {
    load(server, code, false).map(|_| ())
}

/// The code of every library, for a snapshot or FUNCTION DUMP.
pub fn library_codes(server: &Server) -> Vec<Vec<u8>> {
    server.scripts.libraries.read().codes()
}

/// `FUNCTION DUMP`
pub(super) fn function_dump(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let codes = library_codes(cx.server);
    let compress = cx.server.config.read().get_bool("rdbcompression");
    let payload = crate::rdb::encode_functions_payload_with(&codes, compress);
    cx.out.bulk(&payload);
    Ok(())
}

/// `FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]`: every library of the payload, or none.
pub(super) fn function_restore(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    if args.len() > 4 {
        return Err(CommandError::bad_subcommand(args[0], args[1]));
    }
    #[derive(PartialEq)]
    enum Policy {
        Append,
        Replace,
        Flush,
    }
    let policy = match args.get(3) {
        None => Policy::Append,
        Some(p) if p.eq_ignore_ascii_case(b"append") => Policy::Append,
        Some(p) if p.eq_ignore_ascii_case(b"replace") => Policy::Replace,
        Some(p) if p.eq_ignore_ascii_case(b"flush") => Policy::Flush,
        Some(_) => {
            return Err(CommandError::err(
                "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ))
        }
    };
    let codes = crate::rdb::decode_functions_payload(args[2]).map_err(|e| match e {
        crate::rdb::PayloadError::VersionOrChecksum => {
            CommandError::err("DUMP payload version or checksum are wrong")
        }
        crate::rdb::PayloadError::BadData(e) => CommandError::Owned(format!("ERR {}", e.msg)),
    })?;
    let mut new = Vec::with_capacity(codes.len());
    for code in &codes {
        new.push(compile(cx.server, code).map_err(CommandError::Owned)?);
    }
    let mut libs = cx.server.scripts.libraries.write();
    let mut next = if policy == Policy::Flush {
        let mut empty = libs.clone();
        empty.clear();
        empty
    } else {
        libs.clone()
    };
    for lib in new {
        if policy == Policy::Append && next.get(&lib.name).is_some() {
            return Err(CommandError::Owned(format!(
                "ERR Library {} already exists",
                lib.name
            )));
        }
        next.add(lib, true).map_err(CommandError::Owned)?;
    }
    *libs = next;
    drop(libs);
    cx.dirty(1);
    cx.out.ok();
    Ok(())
}

/// `FUNCTION LOAD [REPLACE] code`
pub(super) fn function_load(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    // Options, then the code last (the arity guarantees at least the code).
    let Some((code, options)) = args[2..].split_last() else {
        return Err(CommandError::arity("function|load"));
    };
    let mut replace = false;
    for opt in options {
        if opt.eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else {
            return Err(CommandError::Owned(format!(
                "ERR Unknown option given: {}",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    let name = load(cx.server, code, replace).map_err(CommandError::Owned)?;
    cx.dirty(1);
    cx.out.bulk(name.as_bytes());
    Ok(())
}

/// `FUNCTION DELETE library-name`
pub(super) fn function_delete(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let name = String::from_utf8_lossy(args[2]);
    if !cx.server.scripts.libraries.write().remove(&name) {
        return Err(CommandError::err("Library not found"));
    }
    cx.dirty(1);
    cx.out.ok();
    Ok(())
}

/// `FUNCTION FLUSH [ASYNC|SYNC]`
pub(super) fn function_flush(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    match args.get(2) {
        None => {}
        Some(m)
            if args.len() == 3
                && (m.eq_ignore_ascii_case(b"sync") || m.eq_ignore_ascii_case(b"async")) => {}
        _ => {
            return Err(CommandError::err(
                "FUNCTION FLUSH only supports SYNC|ASYNC option",
            ))
        }
    }
    cx.server.scripts.libraries.write().clear();
    cx.dirty(1);
    cx.out.ok();
    Ok(())
}

/// `FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]`
pub(super) fn function_list(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let mut pattern: Option<&[u8]> = None;
    let mut with_code = false;
    let mut i = 2;
    while i < args.len() {
        let a = args[i];
        if a.eq_ignore_ascii_case(b"withcode") && !with_code {
            with_code = true;
        } else if a.eq_ignore_ascii_case(b"libraryname") && pattern.is_none() {
            let Some(p) = args.get(i + 1) else {
                return Err(CommandError::err("library name argument was not given"));
            };
            pattern = Some(p);
            i += 1;
        } else {
            return Err(CommandError::Owned(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(a)
            )));
        }
        i += 1;
    }
    let libs: Vec<Arc<Library>> = cx
        .server
        .scripts
        .libraries
        .read()
        .iter()
        .filter(|l| pattern.is_none_or(|p| crate::util::glob_match(p, l.name.as_bytes(), false)))
        .cloned()
        .collect();
    let out = &mut cx.out;
    out.array(libs.len());
    for lib in libs {
        out.map(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(lib.name.as_bytes());
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array(lib.functions.len());
        for f in &lib.functions {
            out.map(3);
            out.bulk(b"name");
            out.bulk(f.name.as_bytes());
            out.bulk(b"description");
            match &f.description {
                Some(d) => out.bulk(d),
                None => out.null(),
            }
            out.bulk(b"flags");
            let names = f.flags.names();
            out.set(names.len());
            for n in names {
                out.simple(n);
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&lib.code);
        }
    }
    Ok(())
}

/// `FUNCTION STATS`
pub(super) fn function_stats(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    let (libs, funcs) = {
        let l = cx.server.scripts.libraries.read();
        (l.len(), l.function_count())
    };
    let running = cx.server.scripts.running_function();
    let out = &mut cx.out;
    out.map(2);
    out.bulk(b"running_script");
    match running {
        Some((name, command, ms)) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"command");
            out.array(command.len());
            for a in &command {
                out.bulk(a);
            }
            out.bulk(b"duration_ms");
            out.int(ms as i64);
        }
        None => out.null(),
    }
    out.bulk(b"engines");
    out.map(1);
    out.bulk(b"LUA");
    out.map(2);
    out.bulk(b"libraries_count");
    out.int(libs as i64);
    out.bulk(b"functions_count");
    out.int(funcs as i64);
    Ok(())
}

/// `FUNCTION HELP`
pub(super) fn function_help(cx: &mut Ctx, _args: &[&[u8]]) -> CmdResult {
    crate::command::server::help_reply(
        &mut cx.out,
        "FUNCTION",
        &[
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a library from the code (its first line: #!lua name=<library>).",
            "    REPLACE replaces a library of the same name.",
            "DELETE <LIBRARY NAME>",
            "    Delete a library and its functions.",
            "KILL",
            "    Stop the running function, if it has not written anything.",
            "FLUSH [<ASYNC | SYNC>]",
            "    Delete every library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Every library (or those matching PATTERN): its functions, optionally its code.",
            "STATS",
            "    The running function, if any, and how many libraries and functions exist.",
            "DUMP",
            "    Every library, serialized for FUNCTION RESTORE.",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Load the libraries of a FUNCTION DUMP payload. APPEND (the default) fails",
            "    on a name that exists; REPLACE replaces it; FLUSH deletes every library first.",
        ],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_metadata() {
        let (name, body) = metadata(b"#!lua name=mylib\nreturn 1").unwrap();
        assert_eq!(
            metadata(b"#!lua name=x").unwrap_err(),
            "ERR Invalid library metadata"
        );
        assert_eq!(name, "mylib");
        assert_eq!(body, b"\nreturn 1");
        assert_eq!(
            metadata(b"return 1").unwrap_err(),
            "ERR Missing library metadata"
        );
        assert_eq!(
            metadata(b"#!py name=x\n").unwrap_err(),
            "ERR Engine 'py' not found"
        );
        assert_eq!(
            metadata(b"#!lua\n").unwrap_err(),
            "ERR Library name was not given"
        );
        assert_eq!(
            metadata(b"#!lua name=x foo=bar\n").unwrap_err(),
            "ERR Invalid metadata value given: foo=bar"
        );
        assert_eq!(
            metadata(b"#!lua name=x name=y\n").unwrap_err(),
            "ERR Invalid metadata value, name argument was given multiple times"
        );
        assert_eq!(
            metadata(b"#!lua name=bad-name\n").unwrap_err(),
            api::BAD_NAME
        );
    }
}
