//! What a replica reads from its primary after sending PSYNC, parsed as the link thread
//! (`kiln::repl::replica`) parses it, through the same functions (`kiln::repl::wire`):
//! the `+FULLRESYNC` / `+CONTINUE` line (empty keep-alive lines skipped), the `$<length>`
//! or `$EOF:<mark>` line, the RDB delimited by its length or its end mark, then the
//! command stream with REPLCONF GETACK picked out.
//!
//! Asserts: no panic, no allocation from a declared length; the events (and the error
//! that ends the link) are the same whether the bytes arrive in one read or in arbitrary
//! pieces (a mark or a line split across reads).
#![no_main]

use kiln::repl::wire::{self, LineStep, PsyncReply, RdbPreamble};
use kiln_fuzz::Splitter;
use kiln_resp::{parse_request, Parsed};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq, Eq)]
enum Event {
    FullResync(String, u64),
    Continue(String),
    Rdb(Vec<u8>),
    Command(Vec<Vec<u8>>),
    GetAck,
    Failed(String),
}

enum State {
    Psync,
    Preamble,
    Exact(u64, Vec<u8>),
    Mark(Vec<u8>, Vec<u8>),
    Stream,
    Done,
}

struct Link {
    buf: Vec<u8>,
    pos: usize,
    state: State,
    events: Vec<Event>,
}

impl Link {
    fn fail(&mut self, msg: String) {
        self.events.push(Event::Failed(msg));
        self.state = State::Done;
    }

    /// A reply line, or `None` when more bytes are needed (or the link failed).
    fn line(&mut self) -> Option<String> {
        match wire::next_line(&self.buf[self.pos..]) {
            LineStep::Line(l, used) => {
                self.pos += used;
                Some(l)
            }
            LineStep::More(used) => {
                self.pos += used;
                None
            }
            LineStep::TooLong => {
                self.fail("too long line".into());
                None
            }
        }
    }

    fn feed(&mut self, read: &[u8]) {
        self.buf.extend_from_slice(read);
        loop {
            match &mut self.state {
                State::Done => return,
                State::Psync => {
                    let Some(l) = self.line() else { return };
                    match wire::parse_psync_reply(&l) {
                        Ok(PsyncReply::FullResync { replid, offset }) => {
                            self.events.push(Event::FullResync(replid.into(), offset));
                            self.state = State::Preamble;
                        }
                        Ok(PsyncReply::Continue { replid }) => {
                            self.events.push(Event::Continue(replid.into()));
                            self.state = State::Stream;
                        }
                        Err(e) => self.fail(e),
                    }
                }
                State::Preamble => {
                    let Some(l) = self.line() else { return };
                    match wire::parse_rdb_preamble(&l) {
                        Ok(RdbPreamble::Length(n)) => {
                            // As the link: never reserve by a length the peer sent.
                            let data = Vec::with_capacity((n as usize).min(1 << 20));
                            self.state = State::Exact(n, data);
                        }
                        Ok(RdbPreamble::EofMark(m)) => {
                            self.state = State::Mark(m.to_vec(), Vec::new());
                        }
                        Err(e) => self.fail(e),
                    }
                }
                State::Exact(n, data) => {
                    let want = (*n - data.len() as u64) as usize;
                    let take = want.min(self.buf.len() - self.pos);
                    data.extend_from_slice(&self.buf[self.pos..self.pos + take]);
                    self.pos += take;
                    if data.len() as u64 != *n {
                        return;
                    }
                    let data = std::mem::take(data);
                    self.events.push(Event::Rdb(data));
                    self.state = State::Stream;
                }
                State::Mark(mark, data) => {
                    let searched = data.len();
                    data.extend_from_slice(&self.buf[self.pos..]);
                    self.buf.clear();
                    self.pos = 0;
                    let Some(at) = wire::find_eof_mark(data, searched, mark) else {
                        return;
                    };
                    let after = data.split_off(at);
                    self.buf.extend_from_slice(&after[mark.len()..]);
                    let data = std::mem::take(data);
                    self.events.push(Event::Rdb(data));
                    self.state = State::Stream;
                }
                State::Stream => {
                    let limits = wire::stream_limits();
                    let mut ranges = Vec::new();
                    loop {
                        let b = &self.buf[self.pos..];
                        match parse_request(b, &mut ranges, &limits) {
                            Ok(Parsed::Complete { consumed }) => {
                                assert!(consumed > 0);
                                let args: Vec<&[u8]> =
                                    ranges.iter().map(|r| &b[r.clone()]).collect();
                                if wire::is_getack(&args) {
                                    self.events.push(Event::GetAck);
                                } else if !args.is_empty() {
                                    let owned = args.iter().map(|a| a.to_vec()).collect();
                                    self.events.push(Event::Command(owned));
                                }
                                self.pos += consumed;
                            }
                            Ok(Parsed::Incomplete { .. }) => return,
                            Err(e) => return self.fail(e.to_string()),
                        }
                    }
                }
            }
        }
    }
}

fn run(reads: &[&[u8]]) -> Vec<Event> {
    let mut link = Link {
        buf: Vec::new(),
        pos: 0,
        state: State::Psync,
        events: Vec::new(),
    };
    for r in reads {
        link.feed(r);
    }
    link.events
}

fuzz_target!(|data: &[u8]| {
    let whole = run(&[data]);
    // Longer inputs can hold a line over the limit that only a piecewise read notices,
    // as with Redis.
    if data.len() <= wire::MAX_LINE {
        assert_eq!(run(&Splitter::new(data).split(data)), whole);
    }
});
