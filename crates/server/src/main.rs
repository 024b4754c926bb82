//! `kiln-server [configfile] [--option value ...]`, like redis-server.

use std::process::ExitCode;

use kiln::config::{args_to_config_text, Config};
use kiln::server::Server;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const USAGE: &str = "Usage: ./kiln-server [/path/to/kiln.conf] [options] [-]
       ./kiln-server - (read config from stdin)
       ./kiln-server -v or --version
       ./kiln-server -h or --help

Examples:
       ./kiln-server (run the server with default conf)
       ./kiln-server /etc/kiln/6379.conf
       ./kiln-server --port 7777
       ./kiln-server --port 7777 --replicaof 127.0.0.1 8888
       ./kiln-server /etc/mykiln.conf --loglevel verbose --threads 4

Every redis.conf directive Kiln knows can be given as --name value.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-v" | "--version") => {
            println!(
                "Kiln server v={} bits=64 (Redis 7 compatible)",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {}
    }

    let mut config = Config::default();
    let mut rest = &args[..];
    // The config file, kept for CONFIG REWRITE and INFO (not for stdin, like redis-server).
    let mut config_path = None;
    if let Some(first) = rest.first() {
        if !first.starts_with("--") {
            let text = if first == "-" {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s);
                s
            } else {
                match std::fs::read_to_string(first) {
                    Ok(t) => {
                        config_path = std::path::absolute(first).ok();
                        t
                    }
                    Err(e) => {
                        eprintln!("Fatal error, can't open config file '{first}': {e}");
                        return ExitCode::from(1);
                    }
                }
            };
            if let Err(e) = config.load_text(&text) {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
            rest = &rest[1..];
        }
    }
    if let Some(bad) = rest.first().filter(|a| !a.starts_with("--")) {
        eprintln!("Unexpected argument '{bad}': options start with --\n\n{USAGE}");
        return ExitCode::from(1);
    }
    if let Err(e) = config.load_text(&args_to_config_text(rest)) {
        eprintln!("{e}");
        return ExitCode::from(1);
    }

    init_logging(&config);

    let threads = match config.get_u64("threads") {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    let server = Server::new_shared(config, threads);
    // A panic anywhere logs a crash report and ends the process (see `crash`).
    let log_to_file = !server.config.read().get("logfile").is_empty();
    kiln::crash::install(
        std::sync::Arc::downgrade(&server) as std::sync::Weak<dyn kiln::crash::Reporter>,
        log_to_file,
    );
    if let Some(path) = config_path {
        let _ = server.process.config_file.set(path);
    }
    if let Err(e) = kiln::command::acl::load_at_startup(&server) {
        tracing::error!("{e}");
        return ExitCode::from(1);
    }
    let listeners = match kiln::net::bind(&server) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = kiln::cluster_bus::start(&server) {
        tracing::error!("{e}");
        return ExitCode::from(1);
    }
    if let Err(e) = start_metrics(&server) {
        tracing::error!("{e}");
        return ExitCode::from(1);
    }
    tracing::info!(
        "Kiln version={}, bits=64, pid={}, just started",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    tracing::info!(
        "Server initialized: {} worker threads, port {}",
        threads,
        server
            .process
            .port
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    // The dataset is loaded before the first client is served; a file that cannot be
    // loaded stops the server, as it stops redis-server.
    // With `appendonly yes` the AOF is the dataset (it wins over the RDB file, as in
    // Redis, even when it does not exist yet); otherwise the RDB file is.
    match kiln::aof::startup(&server) {
        Ok(true) => {}
        Ok(false) => {
            if let Err(e) = kiln::persist::load_at_startup(&server) {
                tracing::error!("Fatal error loading the DB: {e}. Exiting.");
                return ExitCode::from(1);
            }
        }
        Err(e) => {
            tracing::error!("Fatal error loading the AOF: {e}. Exiting.");
            return ExitCode::from(1);
        }
    }
    kiln::net::log_ready(&server);
    match kiln::net::serve(server.clone(), listeners) {
        Ok(()) => {
            // Everything the AOF was given is written and fsynced before exiting.
            kiln::aof::shutdown(&server);
            // SIGTERM / SIGINT (SHUTDOWN saved already, or was told not to).
            if !kiln::persist::save_on_exit(&server) {
                kiln::net::remove_unix_socket(&server);
                return ExitCode::from(1);
            }
            kiln::net::remove_unix_socket(&server);
            tracing::warn!("Kiln is now ready to exit, bye bye...");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Starts the Prometheus endpoint when `metrics-port` is set (see `kiln::metrics_http`).
/// It holds the server weakly: it never keeps it alive, and answers an empty exposition
/// once the server is gone.
fn start_metrics(server: &std::sync::Arc<Server>) -> Result<(), String> {
    let (host, port) = {
        let c = server.config.read();
        (c.get("metrics-bind").to_string(), c.get_u64("metrics-port"))
    };
    if port == 0 {
        return Ok(());
    }
    let addr: std::net::SocketAddr = format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|e| format!("Invalid metrics-bind address '{host}': {e}"))?;
    let weak = std::sync::Arc::downgrade(server);
    let render: kiln::metrics_http::Render = std::sync::Arc::new(move || {
        weak.upgrade()
            .map(|s| kiln::exporter::render(&s))
            .unwrap_or_default()
    });
    let bound = kiln::metrics_http::start(addr, render)
        .map_err(|e| format!("Failed listening on metrics port {port} (tcp), aborting: {e}"))?;
    tracing::info!("Prometheus metrics on http://{bound}/metrics");
    Ok(())
}

fn init_logging(config: &Config) {
    let level = match config.get("loglevel") {
        "debug" => "debug",
        "verbose" => "debug",
        "warning" => "warn",
        "nothing" => "off",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::new(format!("kiln={level},kiln_server={level}"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_thread_names(false);
    let logfile = config.get("logfile").to_string();
    if logfile.is_empty() {
        use std::io::IsTerminal;
        builder
            .with_ansi(std::io::stdout().is_terminal())
            .with_writer(std::io::stdout)
            .init();
    } else {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&logfile)
        {
            Ok(f) => builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .init(),
            Err(e) => {
                eprintln!("Can't open the log file: {e}");
                std::process::exit(1);
            }
        }
    }
}
