//! The special modes (`--scan`, `--bigkeys`, `--memkeys`, `--hotkeys`, `--pipe`, `--rdb`,
//! `--replica`, `--latency`, `--stat`, `--intrinsic-latency`) against redis-server, compared
//! with redis-cli where the output is deterministic.

mod support;

use support::{kiln, redis_cli, same, Server};

fn fill(r: &Server) {
    let p = r.p();
    let mut script = String::new();
    for i in 0..50 {
        script.push_str(&format!("set key:{i} \"{}\"\n", "x".repeat(i)));
    }
    script.push_str("rpush list a b c\nhset hash f v g w\nsadd set m\nzadd zset 1 m\nxadd stream 1-1 f v\nset \"odd key\" \"\\x00\"\n");
    redis_cli(&["-p", &p], Some(script.as_bytes()));
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn scan_lists_every_key_like_redis_cli() {
    let Some(r) = Server::redis(&[]) else { return };
    fill(&r);
    let p = r.p();
    same(&["-p", &p, "--scan"], None);
    same(&["-p", &p, "--scan", "--pattern", "key:1*"], None);
    same(&["-p", &p, "--no-raw", "--scan", "--pattern", "odd*"], None);
    let out = kiln(&["-p", &p, "--scan", "--count", "1000"], None).out();
    assert_eq!(sorted_lines(&out).len(), 56);
    let out = kiln(&["-p", &p, "--scan", "--type", "list"], None).out();
    assert_eq!(out, "list\n");
    let out = kiln(&["-p", &p, "--scan", "--quoted-pattern", "\"odd*\""], None).out();
    assert_eq!(out, "odd key\n");
}

#[test]
fn bigkeys_and_memkeys_match_redis_cli() {
    let Some(r) = Server::redis(&[]) else { return };
    fill(&r);
    let p = r.p();
    let run = same(&["-p", &p, "--bigkeys"], None);
    let out = run.out();
    assert!(
        out.contains("Biggest string found '\"key:49\"' has 49 bytes"),
        "{out}"
    );
    assert!(
        out.contains("1 lists with 3 items (01.79% of keys, avg size 3.00)"),
        "{out}"
    );
    same(&["-p", &p, "--memkeys"], None);
    same(&["-p", &p, "--memkeys-samples", "2"], None);
    same(&["-p", &p, "--bigkeys", "--pattern", "key:*"], None);
}

#[test]
fn hotkeys_needs_an_lfu_policy_and_then_reports_counters() {
    let Some(r) = Server::redis(&["--maxmemory-policy", "allkeys-lfu"]) else {
        return;
    };
    fill(&r);
    let p = r.p();
    let run = kiln(&["-p", &p, "--hotkeys"], None);
    assert_eq!(run.code, Some(0));
    assert!(run.out().contains("-------- summary -------"));
    assert!(
        run.out().contains("hot key found with counter:"),
        "{}",
        run.out()
    );
    let r2 = Server::redis(&[]).unwrap();
    fill(&r2);
    let run = same(&["-p", &r2.p(), "--hotkeys"], None);
    assert_eq!(run.code, Some(1));
}

#[test]
fn pipe_mode_sends_raw_protocol_and_counts_replies() {
    let Some(r) = Server::redis(&[]) else { return };
    let p = r.p();
    let mut input = Vec::new();
    for i in 0..20_000 {
        let key = format!("k{i}");
        let val = format!("v{i}");
        input.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{val}\r\n",
                key.len(),
                val.len()
            )
            .as_bytes(),
        );
    }
    let run = kiln(&["-p", &p, "--pipe"], Some(&input));
    assert_eq!(run.code, Some(0));
    assert_eq!(
        run.out(),
        "All data transferred. Waiting for the last reply...\nLast reply received from server.\nerrors: 0, replies: 20000\n"
    );
    assert_eq!(r.raw("DBSIZE"), b":20000\r\n");
    // Errors are printed and counted, and make the exit status 1; inline commands work too.
    let input = b"SET a 1\r\n*1\r\n$7\r\nNOTACMD\r\nINCR a\r\n";
    let run = same(&["-p", &p, "--pipe"], Some(input));
    assert_eq!(run.code, Some(1));
    assert!(run.out().ends_with("errors: 1, replies: 3\n"));
}

#[test]
fn rdb_fetches_a_snapshot_through_sync() {
    let Some(r) = Server::redis(&[]) else { return };
    fill(&r);
    let p = r.p();
    let dir = support::scratch("rdb");
    let file = dir.join("dump.rdb");
    let path = file.to_string_lossy().to_string();
    let run = kiln(&["-p", &p, "--rdb", &path], None);
    assert_eq!(run.code, Some(0), "{}", run.err());
    let err = run.err();
    assert!(
        err.starts_with(
            "sending REPLCONF capa eof\nsending REPLCONF rdb-only 1\nSYNC sent to master"
        ),
        "{err}"
    );
    assert!(err.contains("Transfer finished with success"), "{err}");
    let data = std::fs::read(&file).unwrap();
    assert!(data.starts_with(b"REDIS00"), "not an RDB file");
    // Written to stdout, the snapshot is the same size (the EOF marker is not part of it).
    let run = kiln(&["-p", &p, "--rdb", "-"], None);
    assert_eq!(run.code, Some(0));
    assert!(run.stdout.starts_with(b"REDIS00"));
    assert_eq!(run.stdout.len(), data.len());
    // The file is a valid snapshot: a server started on it has the keys.
    let copy = dir.join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(&file, copy.join("dump.rdb")).unwrap();
    let dir_arg = copy.to_string_lossy().to_string();
    let r2 = Server::redis(&["--dir", &dir_arg, "--dbfilename", "dump.rdb"]).unwrap();
    assert_eq!(r2.raw("DBSIZE"), b":56\r\n");
    let run = kiln(&["-p", &p, "--rdb", "/nonexistent/dir/x.rdb"], None);
    assert_eq!(run.code, Some(1));
    assert!(run.err().contains("Error opening '/nonexistent/dir/x.rdb'"));
}

#[test]
fn replica_mode_prints_the_commands_a_master_propagates() {
    let Some(r) = Server::redis(&[]) else { return };
    let p = r.p();
    let out = support::stream_until(
        support::kiln_cli(),
        &["-p", &p, "--replica"],
        || {
            support::wait_until("the replica to be online", || {
                String::from_utf8_lossy(&r.raw("INFO replication")).contains("state=online")
            });
            r.raw("SET replicated yes");
        },
        "replicated",
    );
    assert!(out.contains("\"SET\",\"replicated\",\"yes\""), "{out}");
}

#[test]
fn latency_samples_for_a_second_without_a_terminal() {
    let Some(r) = Server::redis(&[]) else { return };
    let p = r.p();
    for (args, sep) in [(&["--latency"][..], ' '), (&["--latency", "--csv"], ',')] {
        let mut a = vec!["-p", p.as_str(), "-i", "0.2"];
        a.extend_from_slice(args);
        let run = kiln(&a, None);
        assert_eq!(run.code, Some(0));
        let out = run.out();
        let fields: Vec<&str> = out.trim_end().split(sep).collect();
        assert_eq!(fields.len(), 4, "{out:?}");
        assert!(fields[3].parse::<u64>().unwrap() > 0);
    }
    let out = kiln(&["-p", &p, "-i", "0.2", "--latency", "--json"], None).out();
    assert!(
        out.starts_with("{\"min\": ") && out.ends_with("}\n"),
        "{out}"
    );
}

#[test]
fn latency_history_and_stat_print_rolling_lines() {
    let Some(r) = Server::redis(&[]) else { return };
    let p = r.p();
    let out = support::stream_until(
        support::kiln_cli(),
        &["-p", &p, "--no-raw", "--latency-history", "-i", "0.2"],
        || {},
        "seconds range\n",
    );
    assert!(out.starts_with("\x1b[0G\x1b[2Kmin: "), "{out:?}");
    let out = support::stream_until(
        support::kiln_cli(),
        &["-p", &p, "--stat", "-i", "0.1"],
        || {},
        "(+",
    );
    assert!(out.starts_with(
        "------- data ------ --------------------- load -------------------- - child -\n\
         keys       mem      clients blocked requests            connections          \n"
    ));
}

#[test]
fn intrinsic_latency_runs_without_a_server() {
    let run = kiln(&["--intrinsic-latency", "1"], None);
    assert_eq!(run.code, Some(0));
    assert!(run.out().contains("total runs (avg latency:"));
    assert!(run.out().contains("Worst run took"));
}
