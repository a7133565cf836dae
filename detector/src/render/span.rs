//! The span of a call in its source: what the text renderer underlines, and the end column
//! SARIF and GitHub annotations take.

use std::ops::Range;

use crate::model::Location;

/// The byte range, in `text` (a whole file), of the call at `loc`: from the column
/// `#[track_caller]` gives (1-based, in characters) to the call's closing parenthesis when it
/// is on the same line. `None` when the line is not in the file.
pub(crate) fn call_span(text: &str, loc: &Location) -> Option<Range<usize>> {
    let (line_start, line) = line_at(text, loc.line)?;
    let (start, len) = underline_span(line, loc.column);
    let byte = |chars: usize| {
        line.char_indices()
            .nth(chars)
            .map_or(line.len(), |(b, _)| b)
    };
    let (from, to) = (byte(start), byte(start + len));
    Some(line_start + from..line_start + to)
}

/// The 1-based end column (exclusive, in characters) of the call at `loc`.
pub(crate) fn end_column(text: &str, loc: &Location) -> Option<u32> {
    let (_, line) = line_at(text, loc.line)?;
    let (start, len) = underline_span(line, loc.column);
    u32::try_from(start + len + 1).ok()
}

/// The byte offset where 1-based line `n` starts, and the line without its terminator.
fn line_at(text: &str, n: u32) -> Option<(usize, &str)> {
    let n = usize::try_from(n).ok()?.checked_sub(1)?;
    let mut offset = 0;
    for (k, line) in text.split_inclusive('\n').enumerate() {
        if k == n {
            let body = line.strip_suffix('\n').unwrap_or(line);
            let body = body.strip_suffix('\r').unwrap_or(body);
            return Some((offset, body));
        }
        offset += line.len();
    }
    None
}

/// The underline for a call at 1-based `column` (in characters) of `line`: from the column to
/// the call's closing parenthesis when it is on the same line (`lock()`,
/// `acquire_timeout(Duration::from_millis(5))`), else the identifier there (at least one
/// character). Returns (start, length) in characters.
fn underline_span(line: &str, column: u32) -> (usize, usize) {
    let chars: Vec<char> = line.chars().collect();
    let start = (column.max(1) as usize - 1).min(chars.len().saturating_sub(1));
    if chars.is_empty() {
        return (0, 1);
    }
    let mut i = start;
    while i < chars.len() && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | ':' | '!')) {
        i += 1;
    }
    // A turbofish: `name::<T>(`.
    if i < chars.len() && chars[i] == '<' {
        let mut depth = 0;
        while i < chars.len() {
            match chars[i] {
                '<' => depth += 1,
                '>' => {
                    depth -= 1;
                    if depth == 0 {
                        i += 1;
                        break;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
    let ident_end = i.max(start + 1);
    if i < chars.len() && chars[i] == '(' {
        let mut depth = 0;
        let mut in_str = false;
        let mut k = i;
        while k < chars.len() {
            let c = chars[k];
            if in_str {
                if c == '\\' {
                    k += 1;
                } else if c == '"' {
                    in_str = false;
                }
            } else {
                match c {
                    '"' => in_str = true,
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            return (start, k + 1 - start);
                        }
                    }
                    _ => {}
                }
            }
            k += 1;
        }
        // The call goes on to the next line: underline to the end of this one.
        let end = chars.len() - chars.iter().rev().take_while(|c| c.is_whitespace()).count();
        return (start, end.max(ident_end) - start);
    }
    (start, ident_end - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn underline_extends_from_method_name_to_closing_paren() {
        let line = "    let mut payer = a.lock();";
        assert_eq!(underline_span(line, 23), (22, 6));
    }

    #[test]
    fn underline_matches_nested_parentheses_and_strings() {
        let line = r#"    m.acquire_timeout(Duration::from_millis(f(")")));"#;
        let (start, len) = underline_span(line, 7);
        let under: String = line.chars().skip(start).take(len).collect();
        assert_eq!(under, r#"acquire_timeout(Duration::from_millis(f(")")))"#);
    }

    #[test]
    fn underline_covers_turbofish_calls() {
        let line = "x.get::<u32>(1);";
        let (start, len) = underline_span(line, 3);
        assert_eq!(&line[start..start + len], "get::<u32>(1)");
    }

    #[test]
    fn underline_runs_to_end_of_line_when_call_continues() {
        let line = "    let g = m.lock_with(   ";
        let (start, len) = underline_span(line, 15);
        assert_eq!(&line[start..start + len], "lock_with(");
    }

    #[test]
    fn underline_is_the_identifier_when_there_is_no_call() {
        assert_eq!(underline_span("foo.bar + 1", 5), (4, 3));
    }

    #[test]
    fn underline_is_one_character_at_punctuation_or_past_the_end() {
        assert_eq!(underline_span("a + b", 3), (2, 1));
        assert_eq!(underline_span("ab", 40), (1, 1));
        assert_eq!(underline_span("", 3), (0, 1));
    }

    #[test]
    fn call_span_is_a_byte_range_of_the_whole_file() {
        let text = "fn main() {\n    let é = a.lock();\n}\n";
        // `#[track_caller]` gives the column of the method name, in characters (`é` is one).
        let at = Location::new("f.rs", 2, 15);
        let span = call_span(text, &at).unwrap();
        assert_eq!(&text[span], "lock()");
        assert_eq!(end_column(text, &at), Some(21));
        assert_eq!(call_span(text, &Location::new("f.rs", 9, 1)), None);
        assert_eq!(call_span(text, &Location::new("f.rs", 0, 1)), None);
    }
}
