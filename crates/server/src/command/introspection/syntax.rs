//! Turns a command's argument synopsis into the argument tree `COMMAND DOCS` reports.
//!
//! Family files describe their arguments the way the command reference prints them:
//! `key value [NX | XX] [GET] [EX seconds | PX milliseconds]`. The grammar:
//!
//! * an UPPERCASE word is a token the client types literally (`NX`, `LIMIT`, `*`); alone it is
//!   a `pure-token` argument, followed by lowercase words it introduces them
//!   (`EX seconds` is the argument `seconds` with token `EX`; `LIMIT offset count` a block);
//! * a lowercase word is a named argument; its type comes from its name (`key`, `count`,
//!   `unix-time-seconds`, ...) and is `string` when the name says nothing;
//! * `[ ... ]` is optional, `< ... >` and `( ... )` group without making optional;
//! * `a | b` inside a group is a choice (`oneof`);
//! * `x [x ...]`, `[x ...]` and `x ...` repeat `x` (`multiple`); when the repeated part
//!   starts with its token, as in `[GET pattern [GET pattern ...]]`, the token repeats too
//!   (`multiple_token`).
//!
//! The strings come from other files, so the parser never panics and never loops: an
//! unbalanced bracket closes at the end, a stray closer is ignored, and nesting deeper than
//! [`MAX_DEPTH`] is flattened.

/// Nesting deeper than this is read as plain words.
const MAX_DEPTH: usize = 16;

/// An argument's `type` in `COMMAND DOCS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Key,
    String,
    Integer,
    Double,
    Pattern,
    UnixTime,
    PureToken,
    Oneof,
    Block,
}

impl Kind {
    /// The name `COMMAND DOCS` prints.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Key => "key",
            Kind::String => "string",
            Kind::Integer => "integer",
            Kind::Double => "double",
            Kind::Pattern => "pattern",
            Kind::UnixTime => "unix-time",
            Kind::PureToken => "pure-token",
            Kind::Oneof => "oneof",
            Kind::Block => "block",
        }
    }
}

/// One argument of a command, as `COMMAND DOCS` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    pub name: String,
    pub kind: Kind,
    pub token: Option<String>,
    pub optional: bool,
    pub multiple: bool,
    pub multiple_token: bool,
    /// For `key` arguments: which of the command's key specs describes it.
    pub key_spec_index: Option<usize>,
    /// The alternatives of a `oneof`, the parts of a `block`.
    pub args: Vec<Arg>,
}

impl Arg {
    fn new(name: String, kind: Kind) -> Self {
        Self {
            name,
            kind,
            token: None,
            optional: false,
            multiple: false,
            multiple_token: false,
            key_spec_index: None,
            args: Vec::new(),
        }
    }

    /// A named argument whose type is guessed from its name.
    fn named(name: &str) -> Self {
        Self::new(name.to_string(), kind_of(name))
    }

    /// A block or oneof named after its parts (`offset_count`, `nx_xx`).
    fn group(kind: Kind, args: Vec<Arg>) -> Self {
        let name = args
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join("_");
        Self {
            args,
            ..Self::new(name, kind)
        }
    }
}

/// Parses a synopsis; `key` arguments are numbered in order of appearance, the numbers
/// capped at `key_specs - 1` (a command with one key spec has every key at index 0).
pub fn parse(syntax: &str, key_specs: usize) -> Vec<Arg> {
    let tokens = lex(syntax);
    let mut pos = 0;
    let alts = parse_alts(&tokens, &mut pos, None, 0);
    let mut args = if alts.len() > 1 {
        // `ON | OFF | SKIP` without brackets: a required choice.
        vec![Arg::group(
            Kind::Oneof,
            alts.iter().map(|a| as_one(convert(a))).collect(),
        )]
    } else {
        alts.into_iter()
            .next()
            .map(|a| convert(&a))
            .unwrap_or_default()
    };
    let mut next = 0;
    number_keys(&mut args, &mut next, key_specs);
    args
}

fn number_keys(args: &mut [Arg], next: &mut usize, key_specs: usize) {
    for a in args {
        if a.kind == Kind::Key {
            a.key_spec_index = Some((*next).min(key_specs.saturating_sub(1)));
            *next += 1;
        }
        number_keys(&mut a.args, next, key_specs);
    }
}

/// The type a named argument most likely has, from its name.
fn kind_of(name: &str) -> Kind {
    let n = name.to_ascii_lowercase();
    if n.starts_with("unix-time") {
        return Kind::UnixTime;
    }
    let numbered = |prefix: &str| {
        n.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|c| c.is_ascii_digit()))
    };
    // `key`, `newkey`, `key1`, `destination`.
    if n.ends_with("key") || numbered("key") || n == "destination" || n == "source" {
        return Kind::Key;
    }
    if n == "pattern" {
        return Kind::Pattern;
    }
    const INTEGER: &[&str] = &[
        "count",
        "offset",
        "start",
        "end",
        "stop",
        "index",
        "seconds",
        "milliseconds",
        "db",
        "port",
        "client-id",
        "cursor",
        "increment",
        "decrement",
        "ttl",
        "bit",
        "len",
        "length",
        "pos",
        "rank",
        "maxlen",
        "limit",
        "threshold",
        "database",
        "timeout-ms",
        "protover",
    ];
    const DOUBLE: &[&str] = &[
        "score",
        "min",
        "max",
        "longitude",
        "latitude",
        "radius",
        "weight",
        "timeout",
    ];
    let integer = INTEGER.contains(&n.as_str())
        || n.starts_with("num")
        || numbered("index")
        || n.ends_with("-db")
        || n.ends_with("-len");
    if integer {
        Kind::Integer
    } else if DOUBLE.contains(&n.as_str()) {
        Kind::Double
    } else {
        Kind::String
    }
}

/// A lexical token of a synopsis.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Word(String),
    Open(char),
    Close(char),
    Bar,
    Ellipsis,
}

fn lex(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<Tok>| {
        if !word.is_empty() {
            out.push(Tok::Word(std::mem::take(word)));
        }
    };
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '[' | '<' | '(' => {
                flush(&mut word, &mut out);
                out.push(Tok::Open(c));
            }
            ']' | '>' | ')' => {
                flush(&mut word, &mut out);
                out.push(Tok::Close(c));
            }
            '|' => {
                flush(&mut word, &mut out);
                out.push(Tok::Bar);
            }
            '.' if chars.peek() == Some(&'.') => {
                // "..." (or any run of dots) marks repetition.
                while chars.peek() == Some(&'.') {
                    chars.next();
                }
                flush(&mut word, &mut out);
                out.push(Tok::Ellipsis);
            }
            c if c.is_whitespace() => flush(&mut word, &mut out),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// A parsed synopsis element.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Word(String),
    Ellipsis,
    Group {
        optional: bool,
        alts: Vec<Vec<Node>>,
    },
}

/// Parses a sequence of alternatives up to the closer of `open` (or the end).
fn parse_alts(toks: &[Tok], pos: &mut usize, open: Option<char>, depth: usize) -> Vec<Vec<Node>> {
    let mut alts = vec![Vec::new()];
    while let Some(t) = toks.get(*pos) {
        *pos += 1;
        let cur = alts.last_mut().expect("never empty");
        match t {
            Tok::Word(w) => cur.push(Node::Word(w.clone())),
            Tok::Ellipsis => cur.push(Node::Ellipsis),
            Tok::Bar => alts.push(Vec::new()),
            Tok::Open(c) if depth < MAX_DEPTH => {
                let inner = parse_alts(toks, pos, Some(*c), depth + 1);
                cur.push(Node::Group {
                    optional: *c == '[',
                    alts: inner,
                });
            }
            Tok::Open(_) => {}
            Tok::Close(_) if open.is_some() => return alts,
            // A closer without an opener: ignored.
            Tok::Close(_) => {}
        }
    }
    alts
}

/// Whether a word is a literal token: it has no lowercase letters (`NX`, `LIB-NAME`, `*`).
fn is_token(w: &str) -> bool {
    !w.is_empty() && !w.chars().any(|c| c.is_lowercase())
}

/// An element after repetition folding.
enum Item {
    Node(Node),
    /// The nodes, one or more times; `optional` when it may also appear zero times.
    Repeat {
        body: Vec<Node>,
        optional: bool,
    },
}

/// Folds `x [x ...]`, `[x ...]` and `x ...` into repeats.
fn fold_repeats(nodes: &[Node]) -> Vec<Item> {
    let mut items: Vec<Item> = Vec::new();
    for node in nodes {
        match node {
            Node::Group {
                optional: true,
                alts,
            } if alts.len() == 1 && alts[0].last() == Some(&Node::Ellipsis) => {
                let body = &alts[0][..alts[0].len() - 1];
                let n = body.len();
                // Does the body repeat the nodes just before it?
                let before_matches = n > 0
                    && items.len() >= n
                    && items[items.len() - n..]
                        .iter()
                        .zip(body)
                        .all(|(i, b)| matches!(i, Item::Node(x) if x == b));
                if before_matches {
                    items.truncate(items.len() - n);
                    items.push(Item::Repeat {
                        body: body.to_vec(),
                        optional: false,
                    });
                } else if n > 0 {
                    items.push(Item::Repeat {
                        body: body.to_vec(),
                        optional: true,
                    });
                }
            }
            Node::Ellipsis => {
                // `x ...`: the previous element repeats.
                match items.pop() {
                    Some(Item::Node(prev)) => items.push(Item::Repeat {
                        body: vec![prev],
                        optional: false,
                    }),
                    // Already repeating (`[x ...] ...`): nothing to add.
                    Some(repeat) => items.push(repeat),
                    None => {}
                }
            }
            other => items.push(Item::Node(other.clone())),
        }
    }
    items
}

/// Several arguments as one: the only one, or a block of them.
fn as_one(mut args: Vec<Arg>) -> Arg {
    if args.len() == 1 {
        args.pop().expect("one")
    } else {
        Arg::group(Kind::Block, args)
    }
}

/// Converts a sequence of nodes into arguments.
fn convert(nodes: &[Node]) -> Vec<Arg> {
    let items = fold_repeats(nodes);
    let mut out = Vec::new();
    let mut i = 0;
    while i < items.len() {
        match &items[i] {
            Item::Node(Node::Word(w)) if is_token(w) => {
                // A token and the lowercase words (or groups) it introduces.
                let mut parts = Vec::new();
                let mut j = i + 1;
                while j < items.len() {
                    match &items[j] {
                        Item::Node(Node::Word(n)) if !is_token(n) => parts.push(Arg::named(n)),
                        Item::Repeat { body, optional } if !body_starts_with_token(body) => {
                            parts.push(repeat_arg(body, *optional));
                        }
                        Item::Node(
                            g @ Node::Group {
                                optional: false, ..
                            },
                        ) if parts.is_empty() => {
                            parts.extend(convert(std::slice::from_ref(g)));
                        }
                        _ => break,
                    }
                    j += 1;
                }
                out.push(token_arg(w, parts));
                i = j;
                continue;
            }
            Item::Node(Node::Word(w)) => out.push(Arg::named(w)),
            Item::Node(Node::Ellipsis) => {}
            Item::Node(Node::Group { optional, alts }) => {
                let mut arg = if alts.len() > 1 {
                    Arg::group(
                        Kind::Oneof,
                        alts.iter().map(|a| as_one(convert(a))).collect(),
                    )
                } else {
                    let inner = alts.first().map(|a| convert(a)).unwrap_or_default();
                    if inner.is_empty() {
                        i += 1;
                        continue;
                    }
                    as_one(inner)
                };
                arg.optional |= *optional;
                out.push(arg);
            }
            Item::Repeat { body, optional } => out.push(repeat_arg(body, *optional)),
        }
        i += 1;
    }
    out
}

fn body_starts_with_token(body: &[Node]) -> bool {
    matches!(body.first(), Some(Node::Word(w)) if is_token(w))
}

/// The argument for a repeated part.
fn repeat_arg(body: &[Node], optional: bool) -> Arg {
    let mut arg = as_one(convert(body));
    arg.multiple = true;
    arg.optional |= optional;
    if body_starts_with_token(body) && arg.token.is_some() {
        arg.multiple_token = true;
    }
    arg
}

/// A token followed by `parts`: a pure token, a named argument with a token, or a block.
fn token_arg(token: &str, mut parts: Vec<Arg>) -> Arg {
    let lower = token.to_ascii_lowercase();
    let mut arg = match parts.len() {
        0 => Arg::new(lower, Kind::PureToken),
        1 if !parts[0].multiple && parts[0].token.is_none() => {
            let mut a = parts.pop().expect("one");
            if matches!(a.kind, Kind::Oneof | Kind::Block) {
                // `FILTERBY <MODULE m | ACLCAT c>`: the choice is named after its token.
                a.name = lower;
            }
            a
        }
        // `ID client-id [client-id ...]`: a block named after the token.
        1 => Arg {
            args: parts,
            ..Arg::new(lower, Kind::Block)
        },
        _ => Arg::group(Kind::Block, parts),
    };
    arg.token = Some(token.to_string());
    arg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(args: &[Arg]) -> Vec<(&str, Kind)> {
        args.iter().map(|a| (a.name.as_str(), a.kind)).collect()
    }

    #[test]
    fn set_synopsis_becomes_redis_argument_tree() {
        let args = parse(
            "key value [NX | XX] [GET] [EX seconds | PX milliseconds | EXAT unix-time-seconds | PXAT unix-time-milliseconds | KEEPTTL]",
            1,
        );
        assert_eq!(
            names(&args),
            [
                ("key", Kind::Key),
                ("value", Kind::String),
                ("nx_xx", Kind::Oneof),
                ("get", Kind::PureToken),
                (
                    "seconds_milliseconds_unix-time-seconds_unix-time-milliseconds_keepttl",
                    Kind::Oneof
                ),
            ]
        );
        assert_eq!(args[0].key_spec_index, Some(0));
        assert!(args[2].optional && args[3].optional && args[4].optional);
        assert_eq!(args[3].token.as_deref(), Some("GET"));
        let ex = &args[4].args;
        assert_eq!(ex[0].name, "seconds");
        assert_eq!(ex[0].kind, Kind::Integer);
        assert_eq!(ex[0].token.as_deref(), Some("EX"));
        assert_eq!(ex[2].kind, Kind::UnixTime);
        assert_eq!(ex[4].kind, Kind::PureToken);
        assert!(!ex[0].optional);
    }

    #[test]
    fn repeated_keys_are_one_multiple_argument() {
        let args = parse("key [key ...]", 1);
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].kind, Kind::Key);
        assert!(args[0].multiple && !args[0].optional);
        let args = parse("numkeys key [key ...] [WEIGHTS weight [weight ...]]", 1);
        assert_eq!(names(&args)[0], ("numkeys", Kind::Integer));
        assert!(args[1].multiple);
        assert_eq!(args[2].name, "weights");
        assert_eq!(args[2].kind, Kind::Block);
        assert!(args[2].optional);
        assert!(args[2].args[0].multiple);
        let args = parse("[key ...]", 1);
        assert!(args[0].optional && args[0].multiple);
        let args = parse("member ...", 0);
        assert!(args[0].multiple);
    }

    #[test]
    fn repeated_pairs_become_a_multiple_block() {
        let args = parse("key field value [field value ...]", 1);
        assert_eq!(args.len(), 2);
        assert_eq!(args[1].kind, Kind::Block);
        assert_eq!(args[1].name, "field_value");
        assert!(args[1].multiple);
        assert_eq!(args[1].args.len(), 2);
    }

    #[test]
    fn repeated_tokens_are_marked_multiple_token() {
        let args = parse("key [BY pattern] [GET pattern [GET pattern ...]]", 1);
        assert_eq!(args[1].kind, Kind::Pattern);
        assert_eq!(args[1].token.as_deref(), Some("BY"));
        let get = &args[2];
        assert_eq!(get.name, "pattern");
        assert_eq!(get.token.as_deref(), Some("GET"));
        assert!(get.optional && get.multiple && get.multiple_token);
    }

    #[test]
    fn a_token_with_two_words_is_a_block() {
        let args = parse("key [LIMIT offset count]", 1);
        assert_eq!(args[1].name, "offset_count");
        assert_eq!(args[1].kind, Kind::Block);
        assert_eq!(args[1].token.as_deref(), Some("LIMIT"));
        assert_eq!(
            names(&args[1].args),
            [("offset", Kind::Integer), ("count", Kind::Integer)]
        );
    }

    #[test]
    fn a_token_with_a_repeated_word_is_a_block_named_after_the_token() {
        let args = parse(
            "[TYPE <NORMAL | MASTER | REPLICA | PUBSUB>] [ID client-id [client-id ...]]",
            0,
        );
        assert_eq!(args[0].name, "type");
        assert_eq!(args[0].kind, Kind::Oneof);
        assert_eq!(args[0].token.as_deref(), Some("TYPE"));
        assert_eq!(args[0].args.len(), 4);
        assert_eq!(args[1].name, "id");
        assert_eq!(args[1].kind, Kind::Block);
        assert!(args[1].optional);
        assert_eq!(args[1].args[0].name, "client-id");
        assert!(args[1].args[0].multiple);
    }

    #[test]
    fn bare_alternatives_are_a_required_oneof() {
        let args = parse("ON | OFF | SKIP", 0);
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].name, "on_off_skip");
        assert_eq!(args[0].kind, Kind::Oneof);
        assert!(!args[0].optional);
        let args = parse("<ON | OFF>", 0);
        assert_eq!(args[0].name, "on_off");
        assert!(!args[0].optional);
    }

    #[test]
    fn key_spec_indexes_follow_the_keys_and_are_capped() {
        let args = parse("source destination <LEFT | RIGHT> <LEFT | RIGHT>", 2);
        assert_eq!(args[0].key_spec_index, Some(0));
        assert_eq!(args[1].key_spec_index, Some(1));
        let args = parse("key newkey extrakey", 2);
        assert_eq!(args[2].key_spec_index, Some(1));
    }

    #[test]
    fn odd_and_broken_synopses_never_panic() {
        for s in [
            "",
            " ",
            "[",
            "]",
            "[[[",
            "]]] x",
            "a | | b",
            "...",
            "[...]",
            "x [y ...",
            "<>",
            "(a|b",
            "| x",
            "[ | ]",
            "A B C [D ... ] ... ...",
            &"[".repeat(1000),
            &"x [".repeat(200),
        ] {
            let _ = parse(s, 0);
            let _ = parse(s, 3);
        }
        assert!(parse("", 1).is_empty());
    }

    #[test]
    fn argument_types_come_from_names() {
        let kinds: Vec<Kind> = parse("key1 key2 index1 destination-db min-match-len protover", 2)
            .iter()
            .map(|a| a.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                Kind::Key,
                Kind::Key,
                Kind::Integer,
                Kind::Integer,
                Kind::Integer,
                Kind::Integer
            ]
        );
        assert_eq!(parse("foo:bar", 0)[0].kind, Kind::String);
    }
}
