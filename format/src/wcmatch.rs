//! kopia's gitignore-style wildcard matcher (`internal/wcmatch`), reproduced rule for rule.
//!
//! kopia decides which paths a snapshot leaves out with this matcher, so arkiv must answer
//! exactly as it does, quirks included; a general glob crate would differ in the corners
//! below. Sources: kopia v0.20.1–v0.23 `internal/wcmatch/wcmatch.go`, `tokens.go`,
//! `rune_scanner.go` (unchanged across those versions). The behaviours, all kept:
//!
//! * The pattern is trimmed of surrounding whitespace only when it is longer than 2 bytes and
//!   its second-to-last byte is not `\` (so `foo\␠` keeps its escaped space).
//! * A leading `!` negates. A pattern with no `/`, or only a trailing one, matches at any depth
//!   (an implicit `**/`); a leading or middle `/` anchors it at the base directory.
//! * A trailing `/` matches directories only. A negated directory-only pattern, asked about a
//!   non-directory, answers "match" (kopia returns `negated` there).
//! * `**` is special only at the very start of the pattern text or as a whole segment after a
//!   `/`; anywhere else (also right after a leading `!`) it acts as `*`.
//! * `*` does not match `/`, except that its scan looks one character past a `/` before it
//!   gives up, so `a*b` matches `ax/b` (kopia's loop checks the previous character).
//! * `[...]` sets with ranges and `[!...]` negation (`^` is a literal). POSIX classes
//!   `[[:name:]]` are recognised only when the class ends further into the text than the
//!   `[[` begins (kopia compares a relative index with an absolute position), so
//!   `[[:digit:]]*.log` works and `scan-[[:digit:]].txt` is a set of literal characters.
//! * Matching is case-sensitive unless `ignore_case` (kopia's snapshot paths always use
//!   case-sensitive matching; the option exists for kopia's own table tests).
//!
//! Character classes follow Go's `unicode` predicates. For ASCII they are exact; for other
//! characters arkiv uses the nearest Rust predicate (`alpha`/`alnum`: Alphabetic, `digit`:
//! numeric, `punct`: not alphanumeric, not whitespace, not control), which can differ from
//! Go on rare non-ASCII characters.

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Rune(char),
    DirSep,
    AnyChar,
    Star { double: bool },
    Seq { items: Vec<SeqItem>, negated: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SeqItem {
    Rune(char),
    Range(char, char),
    Class(Class),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Alnum,
    Alpha,
    Ascii,
    Blank,
    Cntrl,
    Digit,
    Graph,
    Lower,
    Print,
    Punct,
    Space,
    Upper { ignore_case: bool },
    Xdigit,
}

fn go_is_space(c: char) -> bool {
    c.is_whitespace()
}

fn go_is_punct_or_symbol(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_punctuation()
    } else {
        !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control()
    }
}

fn go_is_graphic(c: char) -> bool {
    // Go: letters, marks, numbers, punctuation, symbols and the Zs spaces.
    !c.is_control()
        && (c == ' ' || !c.is_whitespace() || c == '\u{a0}' || c == '\u{3000}')
        && c != '\u{2028}'
        && c != '\u{2029}'
}

fn go_is_print(c: char) -> bool {
    // Go: like IsGraphic, but the only space is U+0020.
    c == ' ' || (go_is_graphic(c) && !c.is_whitespace())
}

impl Class {
    fn parse(name: &str, ignore_case: bool) -> Option<Class> {
        Some(match name {
            "alnum" => Class::Alnum,
            "alpha" => Class::Alpha,
            "ascii" => Class::Ascii,
            "blank" => Class::Blank,
            "cntrl" => Class::Cntrl,
            "digit" => Class::Digit,
            "graph" => Class::Graph,
            "lower" => Class::Lower,
            "print" => Class::Print,
            "punct" => Class::Punct,
            "space" => Class::Space,
            "upper" => Class::Upper { ignore_case },
            "xdigit" => Class::Xdigit,
            _ => return None,
        })
    }

    fn matches(self, c: char) -> bool {
        match self {
            Class::Alnum => c.is_alphabetic() || c.is_numeric(),
            Class::Alpha => c.is_alphabetic(),
            Class::Ascii => c.is_ascii(),
            Class::Blank => {
                c == '\t'
                    || (c.is_whitespace() && !c.is_control() && c != '\u{2028}' && c != '\u{2029}')
            }
            Class::Cntrl => c.is_control(),
            Class::Digit => {
                if c.is_ascii() {
                    c.is_ascii_digit()
                } else {
                    c.is_numeric()
                }
            }
            Class::Graph => go_is_graphic(c),
            Class::Lower => c.is_lowercase(),
            Class::Print => go_is_print(c),
            Class::Punct => go_is_punct_or_symbol(c),
            Class::Space => go_is_space(c),
            Class::Upper { ignore_case } => c.is_uppercase() || (ignore_case && c.is_lowercase()),
            Class::Xdigit => c.is_ascii_hexdigit() || (!c.is_ascii() && c.is_numeric()),
        }
    }
}

impl SeqItem {
    fn matches(&self, c: char) -> bool {
        match self {
            SeqItem::Rune(r) => *r == c,
            SeqItem::Range(a, b) => *a <= c && c <= *b,
            SeqItem::Class(k) => k.matches(c),
        }
    }
}

fn lower(c: char) -> char {
    if c.is_uppercase() {
        c.to_lowercase().next().unwrap_or(c)
    } else {
        c
    }
}

/// kopia's `runeScanner`: a cursor over characters; reads past either end give `'\0'`.
struct Scanner {
    pos: isize,
    text: Vec<char>,
    ignore_case: bool,
}

impl Scanner {
    fn peek(&self, index: isize) -> char {
        let i = self.pos + index;
        match usize::try_from(i).ok().and_then(|i| self.text.get(i)) {
            Some(&c) if self.ignore_case => lower(c),
            Some(&c) => c,
            None => '\0',
        }
    }

    fn read(&mut self) -> char {
        let c = self.peek(0);
        if c != '\0' {
            self.pos += 1;
        }
        c
    }

    fn eos(&self) -> bool {
        self.pos >= self.len()
    }

    fn len(&self) -> isize {
        isize::try_from(self.text.len()).unwrap_or(isize::MAX)
    }

    fn rest(&self) -> &[char] {
        let start = usize::try_from(self.pos.max(0)).unwrap_or(0);
        self.text.get(start..).unwrap_or(&[])
    }

    /// Index of `ch` relative to the cursor, -1 when absent.
    fn index_of(&self, ch: char) -> isize {
        if self.eos() {
            return -1;
        }
        index_of(self.rest(), ch)
    }
}

fn index_of(s: &[char], ch: char) -> isize {
    s.iter()
        .position(|&c| c == ch)
        .and_then(|i| isize::try_from(i).ok())
        .unwrap_or(-1)
}

/// One compiled pattern (kopia's `WildcardMatcher`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WildcardMatcher {
    pattern: String,
    tokens: Vec<Token>,
    dir_only: bool,
    negated: bool,
    ignore_case: bool,
}

fn invalid(pattern: &str, why: &str) -> Error {
    Error::invalid("ignore pattern", format!("{pattern:?}: {why}"))
}

const BACKSLASH_AT_END: &str =
    "end of line found after '\\' character (use '\\\\' for a literal backslash)";

impl WildcardMatcher {
    /// Compiles `pattern` relative to `base_dir` (`""`: no base; `/notes`: rules of the
    /// directory `notes` of the snapshot root), like kopia's `NewWildcardMatcher` with
    /// `BaseDir(base_dir)` and `IgnoreCase(ignore_case)`.
    pub fn new(pattern: &str, base_dir: &str, ignore_case: bool) -> Result<Self> {
        let b = pattern.as_bytes();
        let pattern = if b.len() > 2 && b.get(b.len() - 2) != Some(&b'\\') {
            pattern.trim()
        } else {
            pattern
        };
        let base_dir = if base_dir.len() > 1 {
            base_dir.strip_suffix('/').unwrap_or(base_dir)
        } else {
            base_dir
        };
        let mut p = Scanner {
            pos: 0,
            text: pattern.chars().collect(),
            ignore_case,
        };
        let mut out = Vec::new();
        while go_is_space(p.peek(0)) {
            p.read();
        }
        let negated = p.peek(0) == '!';
        if negated {
            p.read();
        }
        let rooted = p.peek(0) == '/';
        if !base_dir.is_empty() && !pattern.is_empty() {
            out.extend(base_dir.chars().map(|c| {
                if c == '/' {
                    Token::DirSep
                } else {
                    Token::Rune(c)
                }
            }));
            if !rooted {
                out.push(Token::DirSep);
            }
        }
        let first_slash = p.index_of('/');
        if !rooted && pattern != "**" && !pattern.is_empty() {
            if first_slash == -1 || first_slash == p.len() - 1 - p.pos {
                out.push(Token::Star { double: true });
                out.push(Token::DirSep);
            } else if base_dir.is_empty() {
                out.push(Token::DirSep);
            }
        }
        let mut dir_only = false;
        if p.text.last() == Some(&'/') {
            dir_only = true;
            p.text.pop();
        }
        loop {
            let ch = p.read();
            if ch == '\0' {
                break;
            }
            match ch {
                '\\' => {
                    if p.eos() {
                        return Err(invalid(pattern, BACKSLASH_AT_END));
                    }
                    out.push(Token::Rune(p.read()));
                }
                '?' => out.push(Token::AnyChar),
                '/' => out.push(Token::DirSep),
                '*' => {
                    if p.peek(0) == '*' {
                        let prev = p.peek(-2);
                        while p.peek(0) == '*' {
                            p.read();
                        }
                        if prev == '\0' || (prev == '/' && (p.peek(0) == '/' || p.eos())) {
                            out.push(Token::Star { double: true });
                            continue;
                        }
                    }
                    out.push(Token::Star { double: false });
                }
                '[' => out.push(parse_seq(&mut p, pattern, ignore_case)?),
                c => out.push(Token::Rune(c)),
            }
        }
        Ok(WildcardMatcher {
            pattern: pattern.to_owned(),
            tokens: out,
            dir_only,
            negated,
            ignore_case,
        })
    }

    /// The pattern as compiled (trimmed).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether the pattern starts with `!`.
    pub fn negated(&self) -> bool {
        self.negated
    }

    /// kopia's `Match`: `true` when the pattern matches `path` (for a negated pattern: when
    /// it does not), `is_dir` telling whether the entry is a directory.
    pub fn matches(&self, path: &str, is_dir: bool) -> bool {
        if self.dir_only && !is_dir {
            return self.negated;
        }
        let text: Vec<char> = path.chars().collect();
        (do_match(&self.tokens, &text, self.ignore_case) == Outcome::Match) != self.negated
    }
}

fn parse_seq(p: &mut Scanner, pattern: &str, ignore_case: bool) -> Result<Token> {
    let mut ch = p.read();
    let negated = ch == '!';
    if negated {
        ch = p.read();
    }
    let mut items = Vec::new();
    while ch != ']' && ch != '\0' {
        if ch == '\\' {
            ch = p.read();
            if ch == '\0' {
                return Err(invalid(pattern, BACKSLASH_AT_END));
            }
        }
        if p.peek(0) == '-' && p.peek(1) != ']' && p.peek(1) != '\0' {
            p.read();
            let mut end = p.read();
            if end == '\\' {
                end = p.read();
                if end == '\0' {
                    return Err(invalid(pattern, BACKSLASH_AT_END));
                }
            }
            items.push(SeqItem::Range(ch, end));
        } else if ch == '[' && p.peek(0) == ':' {
            let close = p.index_of(']');
            if close == -1 {
                return Err(invalid(pattern, "unterminated sequence, expected ']'"));
            }
            // kopia compares the relative index `close - 1` with the absolute position.
            if close - 1 <= p.pos || p.peek(close - 1) != ':' {
                items.push(SeqItem::Rune(ch));
                ch = p.read();
                continue;
            }
            let from = usize::try_from(p.pos + 1).unwrap_or(0);
            let to = usize::try_from(close + p.pos - 1).unwrap_or(0);
            let name: String = p
                .text
                .get(from..to)
                .unwrap_or(&[])
                .iter()
                .collect::<String>()
                .to_lowercase();
            p.pos += close + 1;
            let class = Class::parse(&name, ignore_case).ok_or_else(|| {
                invalid(pattern, &format!("unrecognized character class [:{name}:]"))
            })?;
            items.push(SeqItem::Class(class));
        } else {
            items.push(SeqItem::Rune(ch));
        }
        ch = p.read();
    }
    if ch != ']' {
        return Err(invalid(pattern, "unterminated sequence, expected ']'"));
    }
    Ok(Token::Seq { items, negated })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Match,
    NoMatch,
    AbortAll,
    AbortToDoubleStar,
}

/// kopia's `doMatch`, step for step (including where its cursor can run before the text).
fn do_match(tokens: &[Token], text: &[char], ignore_case: bool) -> Outcome {
    let mut t = Scanner {
        pos: 0,
        text: text.to_vec(),
        ignore_case,
    };
    let mut pi = 0usize;
    while let Some(token) = tokens.get(pi) {
        let mut tch = t.peek(0);
        if t.eos() && !matches!(token, Token::Star { .. }) {
            return Outcome::AbortAll;
        }
        match token {
            Token::Rune(c) => {
                if tch != *c {
                    return Outcome::NoMatch;
                }
            }
            Token::DirSep => {
                if tch != '/' {
                    return Outcome::NoMatch;
                }
            }
            Token::AnyChar => {
                if tch == '/' {
                    return Outcome::NoMatch;
                }
            }
            Token::Star { double } => {
                let double = *double;
                let next = tokens.get(pi + 1);
                if next.is_none() {
                    if !double && index_of(t.rest(), '/') != -1 {
                        return Outcome::NoMatch;
                    }
                    return Outcome::Match;
                }
                let next_is_sep = matches!(next, Some(Token::DirSep));
                if double
                    && next_is_sep
                    && pi + 2 < tokens.len()
                    && do_match(tokens.get(pi + 2..).unwrap_or(&[]), t.rest(), ignore_case)
                        == Outcome::Match
                {
                    return Outcome::Match;
                }
                if !double && next_is_sep {
                    let slash = index_of(t.rest(), '/');
                    if slash == -1 {
                        return Outcome::NoMatch;
                    }
                    t.pos += slash - 1;
                } else {
                    let rest_tokens = tokens.get(pi + 1..).unwrap_or(&[]);
                    while !t.eos() {
                        let r = do_match(rest_tokens, t.rest(), ignore_case);
                        if r != Outcome::NoMatch {
                            if !double || r != Outcome::AbortToDoubleStar {
                                return r;
                            }
                        } else if !double && tch == '/' {
                            return Outcome::AbortToDoubleStar;
                        }
                        tch = t.read();
                    }
                    return Outcome::AbortAll;
                }
            }
            Token::Seq { items, negated } => {
                let m = items.iter().any(|i| i.matches(tch));
                if m == *negated {
                    return Outcome::NoMatch;
                }
            }
        }
        pi += 1;
        t.read();
    }
    if t.eos() {
        Outcome::Match
    } else {
        Outcome::NoMatch
    }
}

#[cfg(test)]
mod kopia_cases;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn split_dir(path: &str) -> (&str, bool) {
        if path.len() > 1 && path.ends_with('/') {
            (&path[..path.len() - 1], true)
        } else {
            (path, false)
        }
    }

    fn check_cs_ci(table: &[(&str, &str, bool, bool)]) {
        let mut failures = Vec::new();
        for (i, (pattern, path, cs, ci)) in table.iter().enumerate() {
            let (path, is_dir) = split_dir(path);
            for (ignore_case, want) in [(false, cs), (true, ci)] {
                match WildcardMatcher::new(pattern, "", ignore_case) {
                    Ok(m) => {
                        if m.matches(path, is_dir) != *want {
                            failures.push(format!(
                                "#{i} {pattern:?} vs {path:?} (dir {is_dir}, ignore_case {ignore_case}): want {want}"
                            ));
                        }
                    }
                    Err(e) => failures.push(format!("#{i} {pattern:?}: {e}")),
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn kopia_match_table() {
        assert!(kopia_cases::MATCH.len() > 90);
        check_cs_ci(kopia_cases::MATCH);
    }

    #[test]
    fn kopia_character_class_table() {
        assert!(kopia_cases::CLASSES.len() > 100);
        check_cs_ci(kopia_cases::CLASSES);
    }

    #[test]
    fn kopia_base_dir_table() {
        for (pattern, base, path, want) in kopia_cases::BASE_DIR {
            let (path, is_dir) = split_dir(path);
            let m = WildcardMatcher::new(pattern, base, false).unwrap();
            assert_eq!(
                m.matches(path, is_dir),
                *want,
                "{pattern:?} base {base:?} vs {path:?}"
            );
        }
    }

    #[test]
    fn kopia_error_table() {
        for pattern in kopia_cases::ERRORS {
            assert!(
                WildcardMatcher::new(pattern, "", true).is_err(),
                "{pattern:?}"
            );
        }
    }

    /// The quirks repo-c recorded (shared/kopia/fixtures/README.md, repo-c point 4) and the
    /// corners of kopia's code named in the module documentation.
    #[test]
    fn repo_c_and_source_quirks() {
        let m = |p: &str, base: &str, path: &str, dir: bool| {
            WildcardMatcher::new(p, base, false)
                .unwrap()
                .matches(path, dir)
        };
        assert!(m("*.orig  ", "", "/merge.orig", false));
        assert!(!m("*.orig", "", "/merge.ORIG", false));
        assert!(!m("*.orig", "", "/merge.orig.txt", false));
        assert!(m(r"\#*#", "/notes", "/notes/#journal.md#", false));
        assert!(!m(r"\#*#", "/notes", "/notes/journal.md#", false));
        assert!(m("rev-[!0-9a-f]*", "/notes", "/notes/rev-x9", false));
        assert!(!m("rev-[!0-9a-f]*", "/notes", "/notes/rev-7c", false));
        assert!(m("q[^a].txt", "", "/qa.txt", false));
        assert!(m("q[^a].txt", "", "/q^.txt", false));
        assert!(m("[[:digit:]]*.log", "", "/7x.log", false));
        assert!(!m("scan-[[:digit:]].txt", "", "/scan-7.txt", false));
        assert!(m("scan-[[:digit:]].txt", "", "/scan-d].txt", false));
        assert!(m("**/__pycache__/", "", "/__pycache__", true));
        assert!(!m("**/__pycache__/", "", "/assets/__pycache__", false));
        assert!(m("assets/**/*.xcf", "", "/assets/logo.xcf", false));
        assert!(m(
            "assets/**/*.xcf",
            "",
            "/assets/icons/large/app.xcf",
            false
        ));
        assert!(!m("assets/**/*.xcf", "", "/notes/assets/sketch.xcf", false));
        assert!(m("var/**", "", "/var/run", true));
        assert!(!m("var/**", "", "/var", true));
        assert!(m("archive/*.md", "/notes", "/notes/archive/2019.md", false));
        assert!(!m(
            "archive/*.md",
            "/notes",
            "/notes/2024/archive/x.md",
            false
        ));
        assert!(!m(
            "archive/*.md",
            "/notes",
            "/notes/archive/past/2018.md",
            false
        ));
        assert!(m("/raw/", "/assets", "/assets/raw", true));
        assert!(!m("/raw/", "/assets", "/assets/icons/raw", true));
        assert!(m("draft-?.txt", "/notes", "/notes/draft-a.txt", false));
        assert!(!m("draft-?.txt", "/notes", "/notes/draft-10.txt", false));
        assert!(!m("core.[0-9]*", "", "/score.12", false));
        // a single star looks one character past a '/'
        assert!(m("/a*b", "", "/ax/b", false));
        // '**' right after a leading '!' acts as '*'
        let neg = WildcardMatcher::new("!**/keep", "", false).unwrap();
        assert!(neg.negated());
        // a negated directory-only pattern says "match" for a non-directory
        assert!(
            WildcardMatcher::new("!foo/", "", false)
                .unwrap()
                .matches("/bar", false)
        );
    }

    proptest! {
        /// Hostile patterns and paths never panic, and compiling is deterministic.
        #[test]
        fn never_panics(pattern in "[ -~]{0,24}", path in "[/a-c*?\\[\\]!.\\\\]{0,24}", dir in any::<bool>(), base in "(/[a-c]{1,3}){0,2}") {
            if let Ok(m) = WildcardMatcher::new(&pattern, &base, false) {
                let a = m.matches(&path, dir);
                prop_assert_eq!(a, m.matches(&path, dir));
            }
        }

        /// A literal name without special characters matches exactly that name at any depth
        /// below its base directory, and nothing outside it.
        #[test]
        fn literal_names(name in "[a-z]{1,8}", other in "[a-z]{1,8}", depth in proptest::collection::vec("[a-z]{1,4}", 0..3)) {
            let m = WildcardMatcher::new(&name, "/base", false).unwrap();
            let mut p = String::from("/base");
            for d in &depth { p.push('/'); p.push_str(d); }
            let inside = format!("{}/{}", p, name);
            let outside = format!("/elsewhere/{}", name);
            let near = format!("{}/{}", p, other);
            prop_assert!(m.matches(&inside, false));
            prop_assert!(!m.matches(&outside, false));
            if other != name {
                prop_assert!(!m.matches(&near, false));
            }
        }
    }
}
