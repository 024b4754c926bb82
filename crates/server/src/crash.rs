//! What a panic does: a crash report, then the process ends.
//!
//! A panic means a broken invariant somewhere, and the code that panicked may have been in
//! the middle of a write: a key half changed in memory that never reached the AOF or the
//! replicas. Carrying on would serve that state silently, so Kiln does what Redis does on a
//! bug: it logs a report (the command that was running, its argument count and sizes, a
//! backtrace, a few INFO fields) and aborts. A supervisor restarts it from its persistence,
//! which holds every write it acknowledged under the configured `appendfsync`. Nothing is
//! caught anywhere: not in a connection task, not in a background thread, so no panic can
//! leave a client registered, a waiter queued or a lock poisoned behind a living server.
//!
//! The hook reads only atomics and `try_lock`s: the panicking thread may hold any lock.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::Weak;

/// What the report asks of the server, through nothing but atomics and `try_lock`s (the
/// panicking thread may hold any lock). The server implements it; this module knows
/// nothing else of it, so it sits below everything that records running commands.
pub trait Reporter: Send + Sync {
    /// A command's name by its table id.
    fn command_name(&self, id: u32) -> Option<String>;
    /// A few INFO fields, one `name:value` line each.
    fn info(&self, out: &mut String);
}

/// Arguments whose sizes the report lists.
const SIZES: usize = 4;

/// The command a thread is running: its table id, argument count and first sizes.
#[derive(Clone, Copy)]
struct Running {
    id: u32,
    argc: u32,
    sizes: [u32; SIZES],
}

thread_local! {
    static RUNNING: Cell<Option<Running>> = const { Cell::new(None) };
}

/// Notes the command about to run on this thread (for the report). Cheap: one
/// thread-local write.
#[inline]
pub fn running(id: usize, args: &[&[u8]]) {
    let mut sizes = [0u32; SIZES];
    for (s, a) in sizes.iter_mut().zip(args) {
        *s = a.len().min(u32::MAX as usize) as u32;
    }
    RUNNING.with(|r| {
        r.set(Some(Running {
            id: id as u32,
            argc: args.len() as u32,
            sizes,
        }))
    });
}

/// The command on this thread is over.
#[inline]
pub fn done() {
    RUNNING.with(|r| r.set(None));
}

/// Installs the panic hook: report, then abort. `to_file`: the log goes to a file, so the
/// report is also written to stderr.
pub fn install(server: Weak<dyn Reporter>, to_file: bool) {
    std::panic::set_hook(Box::new(move |info| {
        let report = report(&server, &info.to_string());
        tracing::error!("{report}");
        if to_file {
            // Also on stderr: the log file may be what broke.
            eprintln!("{report}");
        }
        std::process::abort();
    }));
}

/// The crash report text.
fn report(server: &Weak<dyn Reporter>, what: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n\n=== KILN BUG REPORT START: Cut & paste starting from here ==="
    );
    let thread = std::thread::current();
    let _ = writeln!(
        s,
        "Kiln {} crashed on thread {}: {what}",
        env!("CARGO_PKG_VERSION"),
        thread.name().unwrap_or("?")
    );
    let server = server.upgrade();
    let _ = writeln!(s, "\n------ CURRENT CLIENT INFO ------");
    match RUNNING.with(Cell::get) {
        Some(r) => {
            let name = server
                .as_ref()
                .and_then(|srv| srv.command_name(r.id))
                .unwrap_or_else(|| format!("#{}", r.id));
            let _ = writeln!(s, "command: {name}");
            let _ = writeln!(s, "argc: {}", r.argc);
            for (i, size) in r.sizes.iter().take(r.argc as usize).enumerate() {
                let _ = writeln!(s, "argv[{i}]: {size} bytes");
            }
        }
        None => {
            let _ = writeln!(s, "no command was running on this thread");
        }
    }
    let _ = writeln!(s, "\n------ STACK TRACE ------");
    let _ = writeln!(s, "{}", std::backtrace::Backtrace::force_capture());
    if let Some(srv) = server {
        let _ = writeln!(s, "------ INFO OUTPUT ------");
        srv.info(&mut s);
    }
    let _ = writeln!(
        s,
        "\n=== KILN BUG REPORT END. Make sure to include from START to END. ==="
    );
    s
}
