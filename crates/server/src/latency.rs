//! The latency monitor (LATENCY LATEST / HISTORY / RESET / GRAPH / DOCTOR): for each event
//! class (`command`, `fast-command`, `expire-cycle`, `eviction-cycle`, `eviction-del`,
//! `aof-write`, `aof-fsync-always`, ...), the samples of at least
//! `latency-monitor-threshold` milliseconds, one per second (the worst of that second),
//! the last 160 of them, and the worst ever.
//!
//! Off (threshold 0, the default) it costs one atomic load where a sample could be taken
//! ([`Latency::wants`]); a sample takes the monitor's lock. Knows nothing of the server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
pub const TS_LEN: usize = 160;
/// Columns of LATENCY GRAPH.
const GRAPH_COLS: usize = 80;

/// One sample: unix seconds and milliseconds.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Sample {
    pub time: u64,
    pub latency: u64,
}

/// One event's ring of samples.
#[derive(Clone)]
pub struct Series {
    idx: usize,
    pub max: u64,
    samples: [Sample; TS_LEN],
}

impl Series {
    fn new() -> Self {
        Self {
            idx: 0,
            max: 0,
            samples: [Sample::default(); TS_LEN],
        }
    }

    /// Oldest first, the slots in use only.
    pub fn samples(&self) -> Vec<Sample> {
        (0..TS_LEN)
            .map(|j| self.samples[(self.idx + j) % TS_LEN])
            .filter(|s| s.time != 0)
            .collect()
    }

    /// The latest sample (time 0 if none).
    pub fn last(&self) -> Sample {
        self.samples[(self.idx + TS_LEN - 1) % TS_LEN]
    }
}

/// The monitor.
#[derive(Default)]
pub struct Latency {
    /// `latency-monitor-threshold` in ms; 0: off.
    threshold: AtomicU64,
    events: Mutex<BTreeMap<String, Series>>,
}

impl Latency {
    pub fn configure(&self, threshold_ms: u64) {
        self.threshold.store(threshold_ms, Relaxed);
    }

    pub fn threshold(&self) -> u64 {
        self.threshold.load(Relaxed)
    }

    /// Whether something that took `ms` is a sample (Redis's `latencyAddSampleIfNeeded`).
    #[inline]
    pub fn wants(&self, ms: u64) -> bool {
        let t = self.threshold.load(Relaxed);
        t != 0 && ms >= t
    }

    /// Adds a sample if it reaches the threshold.
    #[inline]
    pub fn sample_if_needed(&self, event: &str, ms: u64) {
        if self.wants(ms) {
            self.add(event, ms, crate::clock::now_ms() / 1000);
        }
    }

    /// Times what runs until the returned guard drops, and samples it as `event` then; `None`
    /// (no clock read) while the monitor is off.
    #[inline]
    pub fn timer(&self, event: &'static str) -> Option<Timer<'_>> {
        (self.threshold.load(Relaxed) != 0).then(|| Timer {
            latency: self,
            event,
            start: crate::clock::instant(),
        })
    }

    /// Adds a sample at unix second `now` (Redis's `latencyAddSample`).
    pub fn add(&self, event: &str, ms: u64, now: u64) {
        let mut events = self.events.lock();
        if !events.contains_key(event) {
            events.insert(event.to_string(), Series::new());
        }
        let ts = events.get_mut(event).expect("inserted");
        ts.max = ts.max.max(ms);
        let prev = (ts.idx + TS_LEN - 1) % TS_LEN;
        if ts.samples[prev].time == now {
            ts.samples[prev].latency = ts.samples[prev].latency.max(ms);
            return;
        }
        ts.samples[ts.idx] = Sample {
            time: now,
            latency: ms,
        };
        ts.idx = (ts.idx + 1) % TS_LEN;
    }

    /// Every event, by name.
    pub fn events(&self) -> Vec<(String, Series)> {
        self.events
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn series(&self, event: &[u8]) -> Option<Series> {
        let name = std::str::from_utf8(event).ok()?;
        self.events.lock().get(name).cloned()
    }

    /// LATENCY RESET: the named events (all with none); how many existed.
    pub fn reset(&self, names: &[&[u8]]) -> usize {
        let mut events = self.events.lock();
        if names.is_empty() {
            let n = events.len();
            events.clear();
            return n;
        }
        names
            .iter()
            .filter(|n| {
                std::str::from_utf8(n)
                    .ok()
                    .and_then(|n| events.remove(n))
                    .is_some()
            })
            .count()
    }
}

/// Samples the time from [`Latency::timer`] to its drop.
pub struct Timer<'a> {
    latency: &'a Latency,
    event: &'static str,
    start: std::time::Instant,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.latency.sample_if_needed(self.event, ms);
    }
}

/// LATENCY GRAPH's text: a header, a rule, and Redis's sparkline of the samples (4 rows
/// of `_o#|`, then each sample's age as a vertical label), 80 columns a block.
pub fn graph(event: &str, ts: &Series, now: u64) -> String {
    let samples = ts.samples();
    let (mut min, mut max) = (0, 0);
    for (i, s) in samples.iter().enumerate() {
        if i == 0 {
            (min, max) = (s.latency, s.latency);
        } else {
            min = min.min(s.latency);
            max = max.max(s.latency);
        }
    }
    let mut out = format!(
        "{event} - high {max} ms, low {min} ms (all time high {} ms)\n",
        ts.max
    );
    out.push_str(&"-".repeat(GRAPH_COLS));
    out.push('\n');
    let seq: Vec<(f64, String)> = samples
        .iter()
        .map(|s| {
            let e = now.saturating_sub(s.time);
            let label = match e {
                0..=59 => format!("{e}s"),
                60..=3599 => format!("{}m", e / 60),
                3600..=86_399 => format!("{}h", e / 3600),
                _ => format!("{}d", e / 86_400),
            };
            (s.latency as f64, label)
        })
        .collect();
    sparkline(&mut out, &seq, GRAPH_COLS, 4);
    out
}

/// Redis's `sparklineRender` with `SPARKLINE_FILL`.
fn sparkline(out: &mut String, seq: &[(f64, String)], columns: usize, rows: usize) {
    const FILL: &[u8] = b"_o#";
    let (mut min, mut max) = (0.0f64, 0.0f64);
    for (i, (v, _)) in seq.iter().enumerate() {
        if i == 0 {
            (min, max) = (*v, *v);
        } else if *v < min {
            min = *v;
        } else if *v > max {
            max = *v;
        }
    }
    let mut j = 0;
    while j < seq.len() {
        let len = (seq.len() - j).min(columns);
        if j != 0 {
            out.push('\n');
        }
        let part = &seq[j..j + len];
        let mut relmax = max - min;
        if relmax == 0.0 {
            relmax = 1.0;
        }
        let steps = (FILL.len() * rows) as i64;
        let mut row = 0;
        loop {
            let mut chars = vec![b' '; len];
            let mut more = false;
            for (c, (v, label)) in chars.iter_mut().zip(part) {
                let relval = v - min;
                let mut step = ((relval * steps as f64) as i64 as f64 / relmax) as i64;
                step = step.clamp(0, steps - 1);
                if row < rows {
                    let idx = step - ((rows - row - 1) * FILL.len()) as i64;
                    more = true;
                    if (0..FILL.len() as i64).contains(&idx) {
                        *c = FILL[idx as usize];
                    } else if idx >= FILL.len() as i64 {
                        *c = b'|';
                    }
                } else {
                    // One blank row between the graph and the labels.
                    if row - rows < 1 {
                        more = true;
                        break;
                    }
                    let at = row - rows - 1;
                    if label.len() > at {
                        more = true;
                        *c = label.as_bytes()[at];
                    }
                }
            }
            if !more {
                break;
            }
            row += 1;
            out.push_str(&String::from_utf8_lossy(&chars));
            out.push('\n');
        }
        j += columns;
    }
}

/// LATENCY DOCTOR's report (see docs/COMPATIBILITY.md: Redis's statistics per event, and
/// its advice reduced to the general kind).
pub fn doctor(events: &[(String, Series)], threshold: u64, now: u64) -> String {
    if threshold == 0 && events.is_empty() {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n".into();
    }
    if events.is_empty() {
        return "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n".into();
    }
    let mut r = String::from(
        "Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n",
    );
    for (i, (name, ts)) in events.iter().enumerate() {
        let s = ts.samples();
        let n = s.len().max(1) as u64;
        let avg = s.iter().map(|x| x.latency).sum::<u64>() / n;
        let mad = s.iter().map(|x| x.latency.abs_diff(avg)).sum::<u64>() / n;
        let first = s.iter().map(|x| x.time).min().unwrap_or(now);
        let period = now.saturating_sub(first).max(1);
        let _ = writeln!(
            r,
            "{}. {name}: {} latency spikes (average {avg}ms, mean deviation {mad}ms, period {:.2} sec). Worst all time event {}ms.",
            i + 1,
            s.len(),
            period as f64 / n as f64,
            ts.max
        );
    }
    r.push_str("\nI have a few advices for you:\n\n");
    let _ = writeln!(
        r,
        "- Check your system for swapping, transparent huge pages and other processes competing for the CPU. See https://redis.io/topics/latency for more information."
    );
    if events.iter().any(|(n, _)| n.contains("command")) {
        r.push_str("- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n");
    }
    if events.iter().any(|(n, _)| n.starts_with("aof")) {
        r.push_str("- The AOF fsync policy or the disk may be too slow for the write load: consider 'appendfsync everysec' and a faster disk.\n");
    }
    if events.iter().any(|(n, _)| n.starts_with("expire")) {
        r.push_str("- Many keys expire at the same time: consider spreading their TTLs.\n");
    }
    if events.iter().any(|(n, _)| n.starts_with("eviction")) {
        r.push_str("- Eviction is taking time: consider a larger maxmemory or fewer big keys.\n");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_a_second_keeps_the_worst() {
        let l = Latency::default();
        l.configure(1);
        l.add("command", 5, 100);
        l.add("command", 9, 100);
        l.add("command", 3, 101);
        let s = l.series(b"command").unwrap();
        assert_eq!(
            s.samples(),
            vec![
                Sample {
                    time: 100,
                    latency: 9
                },
                Sample {
                    time: 101,
                    latency: 3
                }
            ]
        );
        assert_eq!(s.max, 9);
        assert_eq!(l.reset(&[b"command", b"nosuch"]), 1);
    }

    #[test]
    fn the_graph_is_redis_sparkline() {
        let l = Latency::default();
        l.add("command", 10, 100);
        l.add("command", 20, 101);
        l.add("command", 30, 102);
        let g = graph("command", &l.series(b"command").unwrap(), 102);
        let want = format!(
            "command - high 30 ms, low 10 ms (all time high 30 ms)\n{}\n  #\n _|\n ||\n_||\n   \n210\nsss\n",
            "-".repeat(80)
        );
        assert_eq!(g, want);
    }
}
