//! Everything the plugin prints goes through here, made safe for a terminal.
//!
//! What the plugin prints is partly written by others: condition and Event messages, an
//! organization name stored before admission checked it, an API server's error. A terminal
//! acts on control characters it is sent (an escape sequence can set the window title, erase
//! the screen, move the cursor, or write a fake line over a real one), and bidirectional
//! overrides make text read as something else. So every character that is not plain text is
//! printed as a visible escape: the C0 controls but newline and tab (carriage return, escape,
//! bell, backspace included), DEL, the C1 controls, and the invisible formatting characters
//! (bidi embeddings, overrides and isolates, zero-width characters, line and paragraph
//! separators, the byte order mark). Escapes read as Rust writes them (`\x1b`, `\u{202e}`);
//! in JSON they are JSON's own (`\u001b`), so the data is unchanged for a program that reads it.
//!
//! The plugin's modules print only through [`out`], [`note`] and [`error`] (and the macros
//! `put!`, `putln!` and `noteln!` over them; `print!` and `eprint!` are denied in the plugin),
//! and table cells are made one line by
//! [`one_line`], so a value cannot forge a row.

use std::borrow::Cow;
use std::fmt::Write as _;

/// How an unsafe character is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// `\x1b`, `\u{202e}`: for text.
    Text,
    /// `\u001b`: for JSON, whose strings are the only place such a character can be.
    Json,
}

/// Whether a terminal could act on `c`, or it hides or reorders text.
fn is_unsafe(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        c if c.is_control() => true, // C0, DEL, C1
        '\u{061c}'              // Arabic letter mark
        | '\u{200b}'..='\u{200f}' // zero width space/joiners, LRM, RLM
        | '\u{2028}'..='\u{202e}' // line/paragraph separators, bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}' // bidi isolates
        | '\u{feff}' => true,   // zero width no-break space (BOM)
        _ => false,
    }
}

/// `text` with every unsafe character escaped (see the module's documentation).
pub fn escape(text: &str, how: Escape) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_unsafe(c) {
            safe.push(c);
            continue;
        }
        let code = u32::from(c);
        let _ = match how {
            Escape::Json => write!(safe, "\\u{code:04x}"),
            Escape::Text if code < 0x80 => write!(safe, "\\x{code:02x}"),
            Escape::Text => write!(safe, "\\u{{{code:x}}}"),
        };
    }
    Cow::Owned(safe)
}

/// One line of text: newlines and tabs escaped too, for a value inside a line (a table cell,
/// a message after a label), so it cannot start a line of its own.
pub fn one_line(text: &str) -> String {
    escape(text, Escape::Text)
        .replace('\n', "\\n")
        .replace('\t', "\\t")
}

/// Prints `text` on stdout as it is, bar its unsafe characters.
pub fn out(text: &str) {
    write_to(&mut std::io::stdout().lock(), text, Escape::Text);
}

/// Prints `json` (serialized by serde_json) on stdout, with a newline.
pub fn out_json(json: &str) {
    write_to(
        &mut std::io::stdout().lock(),
        &format!("{json}\n"),
        Escape::Json,
    );
}

/// Prints one line on stderr: progress, a note.
pub fn note(line: &str) {
    write_to(
        &mut std::io::stderr().lock(),
        &format!("{line}\n"),
        Escape::Text,
    );
}

/// Prints the error that ends the command: `error: ` and one line.
pub fn error(message: &str) {
    note(&format!("error: {}", one_line(message)));
}

/// `print!` through [`out`].
macro_rules! put {
    ($($arg:tt)*) => { $crate::plugin::output::out(&format!($($arg)*)) };
}

/// `println!` through [`out`].
macro_rules! putln {
    ($($arg:tt)*) => { $crate::plugin::output::out(&format!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` through [`note`].
macro_rules! noteln {
    ($($arg:tt)*) => { $crate::plugin::output::note(&format!($($arg)*)) };
}

pub(crate) use {noteln, put, putln};

fn write_to(stream: &mut impl std::io::Write, text: &str, how: Escape) {
    // A closed pipe (`| head`) is not worth a panic.
    let _ = stream.write_all(escape(text, how).as_bytes());
    let _ = stream.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_escaped_and_plain_text_is_untouched() {
        let hostile = "Evil\u{1b}]0;pwned\u{7}\u{1b}[2J\r\u{8}\u{7f}\u{9b}31m\u{202e}txt.exe";
        assert_eq!(
            escape(hostile, Escape::Text),
            "Evil\\x1b]0;pwned\\x07\\x1b[2J\\x0d\\x08\\x7f\\u{9b}31m\\u{202e}txt.exe"
        );
        let plain = "Contoso IT Services\n  Ünïcødé ok\ttab\n";
        assert!(matches!(escape(plain, Escape::Text), Cow::Borrowed(_)));
    }

    #[test]
    fn json_escapes_keep_the_value() {
        let value = serde_json::json!({"organization": "a\u{1b}[2Jb\u{202e}c\u{9b}"});
        let printed = serde_json::to_string(&value).unwrap();
        let safe = escape(&printed, Escape::Json);
        assert!(safe.is_ascii(), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn a_value_in_a_line_stays_on_it() {
        assert_eq!(
            one_line("x\n  Ready=True\tok\u{1b}"),
            "x\\n  Ready=True\\tok\\x1b"
        );
    }
}
