//! `DEBUG MALLCTL` and `DEBUG MALLCTL-STR`: jemalloc's control names read and written
//! through tikv-jemalloc-ctl's safe accessors (no `unsafe` here: a value is read at a
//! fixed width that jemalloc checks, and strings only under names jemalloc documents as
//! strings).

use tikv_jemalloc_ctl::{Access, AsName, Name};

use crate::command::Ctx;
use crate::error::{CmdResult, CommandError, E, NOT_INTEGER};
use crate::util::parse_i64;

/// The errno behind a jemalloc-ctl error (the crate shows it only through its message).
fn errno(e: &tikv_jemalloc_ctl::Error) -> i32 {
    let text = e.to_string();
    if text.starts_with("`newp`") {
        libc::EINVAL
    } else if text.starts_with("`name`") {
        libc::ENOENT
    } else if text.starts_with("Attempt to read or write `void`") {
        libc::EPERM
    } else if text.starts_with("A memory allocation") {
        libc::EAGAIN
    } else if text.starts_with("An interface with side effects") {
        libc::EFAULT
    } else {
        text.trim_start_matches("Unknown error code: \"")
            .trim_end_matches("\".")
            .parse()
            .unwrap_or(libc::EINVAL)
    }
}

/// Redis's reply for a failed call: the error number's text, as `strerror` gives it.
fn strerror(e: &tikv_jemalloc_ctl::Error) -> CommandError {
    let text = std::io::Error::from_raw_os_error(errno(e)).to_string();
    let end = text.rfind(" (os error").unwrap_or(text.len());
    CommandError::err(text[..end].to_string())
}

/// The name as jemalloc takes it: NUL-terminated (an inner NUL ends it, as in C).
fn c_name(name: &[u8]) -> Vec<u8> {
    let mut n: Vec<u8> = name.split(|&c| c == 0).next().unwrap_or_default().to_vec();
    n.push(0);
    n
}

/// Reads `name` as a `T`, then writes `new`: the old value, or None for a write-only
/// name (its read is EPERM). Two calls, because the crate's one-call update passes the
/// same buffer for the old and the new value, which jemalloc reads after writing the old
/// value into it.
fn exchange<T: Copy>(name: &Name, new: T) -> Result<Option<T>, tikv_jemalloc_ctl::Error>
where
    Name: Access<T>,
{
    match Access::<T>::read(name) {
        Ok(old) => Access::<T>::write(name, new).map(|()| Some(old)),
        Err(e) if errno(&e) == libc::EPERM => Access::<T>::write(name, new).map(|()| None),
        Err(e) => Err(e),
    }
}

/// `DEBUG MALLCTL name [value]`: the 64-bit value of `name` (jemalloc refuses any other
/// width with EINVAL, as Redis's read then ends), or with `value` writes it and replies
/// the old one. A read-only name gives EPERM; a write-only one is written and answered
/// OK. Values of 32 bits and booleans are written at their width (Redis tries narrower
/// widths after EINVAL too). Extra arguments are ignored, as in Redis.
pub(super) fn debug_mallctl(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let name = c_name(args[0]);
    let name = name.name();
    let Some(raw) = args.get(1) else {
        let v: u64 = name.read().map_err(|e| strerror(&e))?;
        cx.out.int(v as i64);
        return Ok(());
    };
    let val = parse_i64(raw).ok_or(E(NOT_INTEGER))?;
    let einval =
        |r: &Result<_, tikv_jemalloc_ctl::Error>| matches!(r, Err(e) if errno(e) == libc::EINVAL);
    let mut old = exchange::<u64>(name, val as u64);
    if einval(&old) {
        old = exchange::<u32>(name, val as u32).map(|o| o.map(u64::from));
    }
    if einval(&old) {
        old = exchange::<bool>(name, val & 0xff != 0).map(|o| o.map(u64::from));
    }
    match old.map_err(|e| strerror(&e))? {
        Some(v) => cx.out.int(v as i64),
        None => cx.out.ok(),
    }
    Ok(())
}

/// `DEBUG MALLCTL-STR name [value]`: the string value of `name`, or with `value` also sets
/// it (its old value is still the reply; a failed write is ignored, as in Redis). Only
/// names jemalloc documents as strings are read as strings: another existing name is
/// answered EINVAL (Redis would read its number as a pointer). `VOID` (Redis's way to
/// write nothing, to a name like `thread.tcache.flush`) writes nothing here: a void name
/// is refused with EPERM, a string one answers its value.
pub(super) fn debug_mallctl_str(cx: &mut Ctx, args: &[&[u8]]) -> CmdResult {
    let name = c_name(args[0]);
    let name = name.name();
    if !name.value_type_str() {
        // Unknown names get ENOENT, void ones EPERM, the others EINVAL.
        let e = match Access::<u64>::read(name) {
            Err(e) if errno(&e) != libc::EINVAL => strerror(&e),
            _ => CommandError::err("Invalid argument"),
        };
        return Err(e);
    }
    let old: Result<&'static [u8], _> = name.read();
    // `VOID` asks Redis to write nothing (a NULL value), which the safe interface cannot
    // do: nothing is written, and the reply is what follows the read.
    if let Some(raw) = args.get(1).filter(|v| **v != b"VOID") {
        // jemalloc may keep the pointer (a dss setting, a thread name), so the string lives
        // as long as the process: a few bytes per call of a test hook.
        let mut v = raw.split(|&c| c == 0).next().unwrap_or_default().to_vec();
        v.push(0);
        let v: &'static [u8] = Box::leak(v.into_boxed_slice());
        let wrote = Access::<&'static [u8]>::write(name, v);
        if old.is_err() {
            return match wrote {
                Ok(()) => {
                    cx.out.ok();
                    Ok(())
                }
                Err(e) => Err(strerror(&e)),
            };
        }
    }
    let old = old.map_err(|e| strerror(&e))?;
    cx.out.bulk(old.strip_suffix(b"\0").unwrap_or(old));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_nul_terminated_at_the_first_nul() {
        assert_eq!(c_name(b"opt.narenas"), b"opt.narenas\0");
        assert_eq!(c_name(b"a\0b"), b"a\0");
        assert_eq!(c_name(b""), b"\0");
    }
}
