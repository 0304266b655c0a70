//! Small pieces the views share: colours, text shortening, number formatting.

use ratatui::style::{Color, Modifier, Style};

use crate::session::protocol::Decision;

/// The colour of a decision (allowed, denied, emulated, complain, gone).
pub fn decision_style(decision: &str) -> Style {
    let fg = match decision {
        "allowed" => Color::Green,
        "denied" => Color::Red,
        "emulated" => Color::Cyan,
        "complain" => Color::Yellow,
        "gone" => Color::DarkGray,
        _ => Color::Reset,
    };
    Style::new().fg(fg)
}

/// Style of the selected table row.
pub fn selected_style() -> Style {
    Style::new().add_modifier(Modifier::REVERSED)
}

/// Style of titles and headers.
pub fn header_style() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

/// `HH:MM:SS.mmm` from an RFC 3339 time, or the text itself if it is not one.
pub fn short_time(rfc3339: &str) -> &str {
    rfc3339
        .get(11..23)
        .filter(|_| rfc3339.len() >= 23)
        .unwrap_or(rfc3339)
}

/// A container id in `max` columns: an engine's 64-hex id by its first 12 (Docker's short
/// form), a name (runc and crun take any) by its end, where names of one family differ.
pub fn container_id(id: &str, max: usize) -> String {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return id[..12.min(max)].to_owned();
    }
    tail(id, max)
}

/// The last `max` characters of a path-like string, with a leading `…` when cut.
pub fn tail(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let skip = n - (max - 1);
    format!("…{}", s.chars().skip(skip).collect::<String>())
}

/// At most `max` characters, with a trailing `…` when cut.
pub fn head(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    format!("{}…", s.chars().take(max - 1).collect::<String>())
}

/// The arguments as the table shows them: what the handler decoded, else the registers.
pub fn args_text(d: &Decision) -> String {
    if d.decoded.is_empty() {
        d.args.join(" ")
    } else {
        d.decoded
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `12µs`, `3.4ms`, `1.2s`.
pub fn latency(us: u64) -> String {
    match us {
        0..=9_999 => format!("{us}µs"),
        10_000..=9_999_999 => format!("{:.1}ms", us as f64 / 1000.0),
        _ => format!("{:.1}s", us as f64 / 1_000_000.0),
    }
}

/// `1234`, `12.3k`, `4.5M`.
pub fn count(n: u64) -> String {
    match n {
        0..=99_999 => n.to_string(),
        100_000..=99_999_999 => format!("{:.1}k", n as f64 / 1000.0),
        _ => format!("{:.1}M", n as f64 / 1_000_000.0),
    }
}

/// A duration in seconds, short: `42s`, `5m`, `3h`, `2d`.
pub fn age(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortening_keeps_the_informative_end() {
        assert_eq!(tail("/usr/bin/busybox", 8), "…busybox");
        assert_eq!(head("mknodat", 4), "mkn…");
        assert_eq!(short_time("2025-01-02T03:04:05.123456Z"), "03:04:05.123");
        assert_eq!(short_time("t1"), "t1");
        assert_eq!(latency(7), "7µs");
        assert_eq!(latency(12_345), "12.3ms");
        assert_eq!(count(123_456), "123.5k");
    }
}
