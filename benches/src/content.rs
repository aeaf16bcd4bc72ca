//! Synthetic file contents with realistic structure and compressibility.
//!
//! Every generator is a pure function of `(kind, seed, size)`: it writes
//! exactly `size` bytes and the same inputs always give the same bytes.

use std::io::{self, Write};

use crate::rng::Rng;

/// Database page size (SQLite's default).
pub const PAGE_SIZE: usize = 4096;

/// How a file's bytes are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Content {
    /// Nested `key: value` YAML.
    Yaml,
    /// Indented JSON objects.
    Json,
    /// INI / TOML / `.env` style `key = value` lines.
    Ini,
    /// Prose (README, notes, Markdown).
    Text,
    /// XML elements with attributes.
    Xml,
    /// Source code (vendored libraries).
    Code,
    /// Timestamped application log lines.
    Log,
    /// SQLite-like 4 KiB pages: compressible records plus random blobs.
    Database,
    /// Incompressible media (video, photos, PDFs of scans, archives).
    Media,
    /// Executable-like: random sections, zero padding and string tables.
    Executable,
    /// Small incompressible thumbnails / previews with a JPEG-ish header.
    Thumbnail,
}

impl Content {
    /// The kind a file extension implies (used by the mutator on a tree it
    /// did not plan itself); `None` for kinds it leaves alone.
    pub fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext {
            "yaml" | "yml" => Self::Yaml,
            "json" => Self::Json,
            "ini" | "conf" | "toml" | "env" | "properties" | "cfg" => Self::Ini,
            "txt" | "md" => Self::Text,
            "xml" => Self::Xml,
            "py" | "js" | "php" => Self::Code,
            "log" => Self::Log,
            "db" | "sqlite3" | "sqlite" => Self::Database,
            _ => return None,
        })
    }

    /// True for the small, human-edited text kinds.
    pub fn is_text_config(self) -> bool {
        matches!(
            self,
            Self::Yaml | Self::Json | Self::Ini | Self::Text | Self::Xml | Self::Code
        )
    }
}

pub(crate) const WORDS: &[&str] = &[
    "server",
    "client",
    "database",
    "cache",
    "user",
    "admin",
    "config",
    "enabled",
    "disabled",
    "timeout",
    "retry",
    "interval",
    "host",
    "port",
    "path",
    "storage",
    "volume",
    "backup",
    "restore",
    "sync",
    "token",
    "secret",
    "session",
    "request",
    "response",
    "handler",
    "worker",
    "queue",
    "task",
    "job",
    "schedule",
    "cron",
    "daily",
    "weekly",
    "monthly",
    "limit",
    "max",
    "min",
    "size",
    "count",
    "level",
    "debug",
    "info",
    "warning",
    "error",
    "trace",
    "metrics",
    "prometheus",
    "grafana",
    "dashboard",
    "panel",
    "query",
    "datasource",
    "alert",
    "rule",
    "notification",
    "email",
    "smtp",
    "ldap",
    "oauth",
    "provider",
    "callback",
    "redirect",
    "domain",
    "proxy",
    "upstream",
    "listen",
    "bind",
    "address",
    "network",
    "bridge",
    "route",
    "gateway",
    "dns",
    "resolver",
    "tls",
    "certificate",
    "key",
    "chain",
    "verify",
    "insecure",
    "log",
    "file",
    "rotate",
    "compress",
    "archive",
    "thumbnail",
    "preview",
    "image",
    "video",
    "audio",
    "library",
    "collection",
    "album",
    "media",
    "transcode",
    "codec",
    "bitrate",
    "resolution",
    "language",
    "locale",
    "timezone",
    "theme",
    "layout",
    "widget",
    "sidebar",
    "header",
    "footer",
    "template",
    "plugin",
    "extension",
    "module",
    "package",
    "version",
    "release",
    "update",
    "channel",
    "stable",
    "beta",
    "feature",
    "flag",
    "experimental",
    "repository",
    "branch",
    "commit",
    "merge",
    "issue",
    "label",
    "milestone",
    "webhook",
    "mirror",
    "lfs",
    "avatar",
    "profile",
    "group",
    "team",
    "organization",
    "permission",
    "role",
    "policy",
    "access",
    "read",
    "write",
    "delete",
    "create",
    "list",
    "watch",
    "sensor",
    "automation",
    "trigger",
    "condition",
    "action",
    "entity",
    "device",
    "integration",
    "zone",
    "state",
    "attribute",
    "history",
    "recorder",
    "purge",
    "keep",
    "days",
    "document",
    "tag",
    "correspondent",
    "consumer",
    "ocr",
    "index",
    "search",
    "vault",
    "password",
    "attachment",
    "folder",
    "item",
    "cipher",
    "organization_id",
    "invite",
    "signup",
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "for",
    "on",
    "with",
    "when",
    "this",
    "that",
    "default",
    "value",
    "new",
];

const LEVELS: &[&str] = &[
    "INFO", "INFO", "INFO", "INFO", "DEBUG", "DEBUG", "WARN", "ERROR",
];

/// Writes exactly `size` bytes of `content` derived from `seed` to `w`.
pub fn write_content(w: &mut impl Write, content: Content, seed: u64, size: u64) -> io::Result<()> {
    match content {
        Content::Database => write_database(w, seed, size),
        Content::Media => write_random(w, seed, size, &[]),
        Content::Thumbnail => write_random(w, seed, size, b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00"),
        Content::Executable => write_executable(w, seed, size),
        text => write_text(w, text, seed, size),
    }
}

fn write_random(w: &mut impl Write, seed: u64, size: u64, header: &[u8]) -> io::Result<()> {
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    let mut first = true;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        if first {
            let h = header.len().min(n);
            buf[..h].copy_from_slice(&header[..h]);
            first = false;
        }
        w.write_all(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

fn write_executable(w: &mut impl Write, seed: u64, size: u64) -> io::Result<()> {
    let mut rng = Rng::new(seed);
    let mut page = vec![0u8; PAGE_SIZE];
    let mut left = size;
    while left > 0 {
        let roll = rng.below(10);
        page.fill(0);
        if roll < 6 {
            // Machine code: high entropy.
            rng.fill(&mut page);
        } else if roll < 8 {
            // Relocations / padding: mostly zeros.
            for _ in 0..rng.range(8, 64) {
                let at = rng.below(PAGE_SIZE as u64) as usize;
                page[at] = rng.next_u64() as u8;
            }
        } else {
            // String tables.
            let mut at = 0;
            while at < PAGE_SIZE {
                let word = rng.pick(WORDS).as_bytes();
                let n = word.len().min(PAGE_SIZE - at);
                page[at..at + n].copy_from_slice(&word[..n]);
                at += n + 1;
            }
        }
        let n = left.min(PAGE_SIZE as u64) as usize;
        w.write_all(&page[..n])?;
        left -= n as u64;
    }
    Ok(())
}

fn write_database(w: &mut impl Write, seed: u64, size: u64) -> io::Result<()> {
    let mut page = vec![0u8; PAGE_SIZE];
    let pages = size.div_ceil(PAGE_SIZE as u64);
    let mut left = size;
    for no in 0..pages {
        database_page(seed, no, 0, &mut page);
        let n = left.min(PAGE_SIZE as u64) as usize;
        w.write_all(&page[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// Fills `page` (`PAGE_SIZE` bytes) with database page `no` of the file
/// seeded `seed`, as it looks after `generation` rewrites of that page.
pub fn database_page(seed: u64, no: u64, generation: u64, page: &mut [u8]) {
    debug_assert_eq!(page.len(), PAGE_SIZE);
    let mut rng = Rng::new(crate::rng::mix(
        seed ^ no.wrapping_mul(0x9E37_79B9) ^ (generation << 40),
    ));
    page.fill(0);
    if no == 0 {
        page[..16].copy_from_slice(b"SQLite format 3\0");
        page[16..18].copy_from_slice(&(PAGE_SIZE as u16).to_be_bytes());
        page[18] = 1;
        page[19] = 1;
        page[24..28].copy_from_slice(&(generation as u32).to_be_bytes());
        let mut schema = Vec::new();
        for t in 0..rng.range(4, 12) {
            let _ = write!(
                schema,
                "CREATE TABLE {}_{} (id INTEGER PRIMARY KEY, {} TEXT, {} INTEGER, created_at TEXT);",
                rng.pick(WORDS),
                t,
                rng.pick(WORDS),
                rng.pick(WORDS)
            );
        }
        let n = schema.len().min(PAGE_SIZE - 100);
        page[100..100 + n].copy_from_slice(&schema[..n]);
        return;
    }
    match rng.below(100) {
        // Free-list pages.
        0..=5 => {}
        // Overflow pages: stored blobs, encrypted tokens, images.
        6..=19 => {
            page[..4].copy_from_slice(&((no + 1) as u32).to_be_bytes());
            rng.fill(&mut page[4..]);
        }
        // B-tree pages: records packed from the end, cell pointers at the start.
        roll => {
            let leaf = roll >= 30;
            page[0] = if leaf { 0x0D } else { 0x0A };
            let fill = rng.range(55, 95) as usize * PAGE_SIZE / 100;
            let mut cells: Vec<u8> = Vec::with_capacity(PAGE_SIZE);
            let mut count = 0u16;
            let mut rowid = no * 40;
            while cells.len() < fill {
                rowid += rng.range(1, 3);
                database_record(&mut rng, &mut cells, rowid, leaf);
                count += 1;
            }
            let start = PAGE_SIZE - cells.len().min(PAGE_SIZE - 8 - 2 * usize::from(count));
            let body = PAGE_SIZE - start;
            page[start..].copy_from_slice(&cells[..body]);
            page[3..5].copy_from_slice(&count.to_be_bytes());
            page[5..7].copy_from_slice(&(start as u16).to_be_bytes());
            let mut offset = start;
            for i in 0..usize::from(count) {
                let at = 8 + 2 * i;
                page[at..at + 2].copy_from_slice(&(offset as u16).to_be_bytes());
                offset += (body / usize::from(count)).max(1);
            }
        }
    }
}

fn database_record(rng: &mut Rng, out: &mut Vec<u8>, rowid: u64, leaf: bool) {
    out.extend_from_slice(&(rowid as u32).to_be_bytes());
    if !leaf {
        // Index keys: short text plus rowid.
        out.extend_from_slice(rng.pick(WORDS).as_bytes());
        out.push(b'-');
        out.extend_from_slice(rng.pick(WORDS).as_bytes());
        return;
    }
    let _ = write!(out, "{}.{}", rng.pick(WORDS), rng.pick(WORDS));
    out.extend_from_slice(&(rng.below(100_000) as u32).to_be_bytes());
    let t = 1_704_067_200 + rng.below(31_536_000);
    let _ = write!(
        out,
        "2024-{:02}-{:02} {:02}:{:02}:{:02}",
        1 + t % 12,
        1 + t % 28,
        t % 24,
        t % 60,
        t / 60 % 60
    );
    match rng.below(10) {
        0..=3 => {
            for _ in 0..rng.range(2, 10) {
                out.push(b' ');
                out.extend_from_slice(rng.pick(WORDS).as_bytes());
            }
        }
        4..=5 => {
            let _ = write!(
                out,
                "{{\"{}\":\"{}\",\"{}\":{}}}",
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.below(1000)
            );
        }
        6..=7 => hex(rng, out, 32),
        _ => {
            let mut blob = [0u8; 24];
            rng.fill(&mut blob);
            out.extend_from_slice(&blob);
        }
    }
}

fn hex(rng: &mut Rng, out: &mut Vec<u8>, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bits = 0u64;
    for i in 0..digits {
        if i % 16 == 0 {
            bits = rng.next_u64();
        }
        out.push(HEX[(bits & 15) as usize]);
        bits >>= 4;
    }
}

fn base64ish(rng: &mut Rng, out: &mut Vec<u8>, min: u64, max: u64) {
    let chars = rng.range(min, max);
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u64;
    for i in 0..chars {
        if i % 10 == 0 {
            bits = rng.next_u64();
        }
        out.push(B64[(bits & 63) as usize]);
        bits >>= 6;
    }
}

fn uuid(rng: &mut Rng, out: &mut Vec<u8>) {
    hex(rng, out, 8);
    for n in [4, 4, 4, 12] {
        out.push(b'-');
        hex(rng, out, n);
    }
}

/// A scalar value as it appears in configuration files.
fn value(rng: &mut Rng, w: &[&str], out: &mut Vec<u8>, quote: bool) {
    let q: &[u8] = if quote { b"\"" } else { b"" };
    match rng.below(100) {
        0..=34 => {
            out.extend_from_slice(q);
            out.extend_from_slice(rng.pick(w).as_bytes());
            out.extend_from_slice(q);
        }
        35..=54 => {
            let max = if rng.chance(0.5) { 100 } else { 100_000 };
            let _ = write!(out, "{}", rng.below(max));
        }
        55..=64 => out.extend_from_slice(if rng.chance(0.5) { b"true" } else { b"false" }),
        65..=76 => {
            out.extend_from_slice(b"\"");
            for i in 0..rng.range(2, 8) {
                if i > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(rng.pick(w).as_bytes());
            }
            out.extend_from_slice(b"\"");
        }
        77..=84 => {
            let _ = write!(
                out,
                "{q}https://{}.{}.svc.cluster.local:{}/{}{q}",
                rng.pick(w),
                rng.pick(w),
                rng.range(1024, 65535),
                rng.pick(w),
                q = if quote { "\"" } else { "" }
            );
        }
        85..=94 => {
            let _ = write!(
                out,
                "{q}/data/{}/{}{q}",
                rng.pick(w),
                rng.pick(w),
                q = if quote { "\"" } else { "" }
            );
        }
        95..=97 => {
            out.extend_from_slice(q);
            uuid(rng, out);
            out.extend_from_slice(q);
        }
        _ => {
            out.extend_from_slice(q);
            base64ish(rng, out, 24, 64);
            out.extend_from_slice(q);
        }
    }
}

fn key(rng: &mut Rng, w: &[&str], out: &mut Vec<u8>) {
    out.extend_from_slice(rng.pick(w).as_bytes());
    if rng.chance(0.5) {
        out.push(b'_');
        out.extend_from_slice(rng.pick(w).as_bytes());
    }
}

fn sentence(rng: &mut Rng, w: &[&str], out: &mut Vec<u8>, min: u64, max: u64) {
    let words = rng.range(min, max);
    for i in 0..words {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(rng.pick(w).as_bytes());
    }
}

/// Streaming state for line-oriented text kinds.
struct TextGen {
    rng: Rng,
    content: Content,
    /// This file's vocabulary: a subset of [`WORDS`], so words repeat
    /// within a file as they do in real ones.
    words: Vec<&'static str>,
    /// Log message templates: `%n` number, `%w` word, `%u` uuid, `%d` ms.
    templates: Vec<String>,
    depth: usize,
    clock_ms: u64,
}

impl TextGen {
    fn new(content: Content, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let words: Vec<&'static str> = (0..48).map(|_| *rng.pick(WORDS)).collect();
        let mut templates = Vec::new();
        if content == Content::Log {
            let components: Vec<&str> = (0..8).map(|_| *rng.pick(WORDS)).collect();
            for _ in 0..40 {
                let mut t = format!("[{}]", rng.pick(&components));
                for _ in 0..rng.range(3, 9) {
                    t.push(' ');
                    t.push_str(rng.pick::<&str>(&words));
                }
                for _ in 0..rng.range(0, 3) {
                    let placeholder = *rng.pick(&["n", "n", "w", "w", "u", "d"]);
                    t.push_str(&format!(" {}=%{placeholder}", rng.pick(words.as_slice())));
                }
                templates.push(t);
            }
        }
        let clock_ms = seed % 31_536_000_000;
        Self {
            rng,
            content,
            words,
            templates,
            depth: 0,
            clock_ms,
        }
    }

    fn line(&mut self, out: &mut Vec<u8>) {
        let rng = &mut self.rng;
        let w: &[&str] = &self.words;
        match self.content {
            Content::Yaml => {
                let roll = rng.below(100);
                if roll < 8 {
                    out.extend_from_slice(&b"  ".repeat(self.depth));
                    out.extend_from_slice(b"# ");
                    sentence(rng, w, out, 3, 10);
                } else if roll < 22 && self.depth < 4 {
                    out.extend_from_slice(&b"  ".repeat(self.depth));
                    key(rng, w, out);
                    out.push(b':');
                    self.depth += 1;
                } else if roll < 34 {
                    out.extend_from_slice(&b"  ".repeat(self.depth));
                    out.extend_from_slice(b"- ");
                    value(rng, w, out, false);
                } else {
                    out.extend_from_slice(&b"  ".repeat(self.depth));
                    key(rng, w, out);
                    out.extend_from_slice(b": ");
                    value(rng, w, out, false);
                    if rng.chance(0.15) {
                        self.depth = self.depth.saturating_sub(1);
                    }
                }
            }
            Content::Json => {
                let roll = rng.below(100);
                if roll < 12 && self.depth < 5 {
                    out.extend_from_slice(&b"  ".repeat(self.depth));
                    out.push(b'"');
                    key(rng, w, out);
                    out.extend_from_slice(b"\": {");
                    self.depth += 1;
                } else if roll < 24 && self.depth > 0 {
                    self.depth -= 1;
                    out.extend_from_slice(&b"  ".repeat(self.depth));
                    out.extend_from_slice(b"},");
                } else {
                    out.extend_from_slice(&b"  ".repeat(self.depth));
                    out.push(b'"');
                    key(rng, w, out);
                    out.extend_from_slice(b"\": ");
                    value(rng, w, out, true);
                    out.push(b',');
                }
            }
            Content::Ini => {
                if rng.chance(0.1) {
                    out.extend_from_slice(b"\n[");
                    key(rng, w, out);
                    out.push(b']');
                } else if rng.chance(0.05) {
                    out.extend_from_slice(b"; ");
                    sentence(rng, w, out, 3, 9);
                } else {
                    key(rng, w, out);
                    out.extend_from_slice(b" = ");
                    value(rng, w, out, false);
                }
            }
            Content::Text => {
                if rng.chance(0.08) {
                    out.extend_from_slice(b"\n## ");
                    sentence(rng, w, out, 2, 5);
                } else {
                    for _ in 0..rng.range(1, 3) {
                        let first = rng.pick(w).as_bytes();
                        out.push(first[0].to_ascii_uppercase());
                        out.extend_from_slice(&first[1..]);
                        out.push(b' ');
                        sentence(rng, w, out, 4, 14);
                        out.extend_from_slice(b". ");
                    }
                }
            }
            Content::Xml => {
                out.extend_from_slice(&b"  ".repeat(self.depth));
                let tag = *rng.pick(w);
                if rng.chance(0.15) && self.depth < 5 {
                    let _ = write!(out, "<{tag} id=\"");
                    uuid(rng, out);
                    out.extend_from_slice(b"\">");
                    self.depth += 1;
                } else if rng.chance(0.15) && self.depth > 0 {
                    self.depth -= 1;
                    let _ = write!(out, "</{tag}>");
                } else {
                    let _ = write!(out, "<{tag} {}=", rng.pick(w));
                    value(rng, w, out, true);
                    out.push(b'>');
                    sentence(rng, w, out, 1, 4);
                    let _ = write!(out, "</{tag}>");
                }
            }
            Content::Code => {
                let indent = 4 * self.depth;
                out.extend_from_slice(&b" ".repeat(indent));
                match rng.below(10) {
                    0 => {
                        out.extend_from_slice(b"def ");
                        key(rng, w, out);
                        out.push(b'(');
                        sentence(rng, w, out, 1, 3);
                        out.extend_from_slice(b"):");
                        self.depth = 1;
                    }
                    1 if self.depth < 3 => {
                        out.extend_from_slice(b"if ");
                        key(rng, w, out);
                        out.extend_from_slice(b" is not None:");
                        self.depth += 1;
                    }
                    2 => {
                        out.extend_from_slice(b"return ");
                        key(rng, w, out);
                        self.depth = self.depth.saturating_sub(1);
                    }
                    3 => {
                        out.extend_from_slice(b"# ");
                        sentence(rng, w, out, 3, 10);
                    }
                    _ => {
                        key(rng, w, out);
                        out.extend_from_slice(b" = self.");
                        key(rng, w, out);
                        out.push(b'(');
                        value(rng, w, out, true);
                        out.push(b')');
                    }
                }
            }
            Content::Log => {
                self.clock_ms += rng.range(1, 4000);
                let s = self.clock_ms / 1000;
                let _ = write!(
                    out,
                    "2024-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {:5} ",
                    1 + s / 2_592_000 % 12,
                    1 + s / 86_400 % 28,
                    s / 3600 % 24,
                    s / 60 % 60,
                    s % 60,
                    self.clock_ms % 1000,
                    rng.pick(LEVELS),
                );
                let template = rng.pick(&self.templates).as_bytes();
                let mut i = 0;
                while i < template.len() {
                    if template[i] == b'%' && i + 1 < template.len() {
                        match template[i + 1] {
                            b'n' => {
                                let _ = write!(out, "{}", rng.below(10_000));
                            }
                            b'w' => out.extend_from_slice(rng.pick(w).as_bytes()),
                            b'u' => uuid(rng, out),
                            _ => {
                                let _ = write!(out, "{}ms", rng.below(2000));
                            }
                        }
                        i += 2;
                    } else {
                        out.push(template[i]);
                        i += 1;
                    }
                }
            }
            _ => unreachable!("not a text kind"),
        }
        out.push(b'\n');
    }
}

fn write_text(w: &mut impl Write, content: Content, seed: u64, size: u64) -> io::Result<()> {
    let mut g = TextGen::new(content, seed);
    let mut buf = Vec::with_capacity(70_000);
    let mut left = size;
    match content {
        Content::Json => buf.extend_from_slice(b"{\n"),
        Content::Xml => buf.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
        _ => {}
    }
    while left > 0 {
        while (buf.len() as u64) < left.min(65_536) {
            g.line(&mut buf);
        }
        let n = left.min(buf.len() as u64) as usize;
        w.write_all(&buf[..n])?;
        buf.drain(..n);
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(content: Content, seed: u64, size: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_content(&mut out, content, seed, size).unwrap();
        out
    }

    #[test]
    fn exact_sizes_and_determinism() {
        for content in [
            Content::Yaml,
            Content::Json,
            Content::Ini,
            Content::Text,
            Content::Xml,
            Content::Code,
            Content::Log,
            Content::Database,
            Content::Media,
            Content::Executable,
            Content::Thumbnail,
        ] {
            for size in [0, 1, 7, 4096, 100_003] {
                let a = make(content, 42, size);
                assert_eq!(a.len() as u64, size, "{content:?} {size}");
                assert_eq!(a, make(content, 42, size), "{content:?}");
            }
            assert_ne!(
                make(content, 1, 10_000),
                make(content, 2, 10_000),
                "{content:?}"
            );
        }
    }

    #[test]
    fn database_pages_differ_by_generation() {
        let mut a = vec![0u8; PAGE_SIZE];
        let mut b = vec![0u8; PAGE_SIZE];
        database_page(7, 3, 0, &mut a);
        database_page(7, 3, 1, &mut b);
        assert_ne!(a, b);
    }
}
