//! How answers are shown: aligned tables for people, JSON for programs.

use serde_json::Value;

// Terminal control characters in server data are shown escaped.
use crate::error::clean;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns and `key: value` lines.
    Table,
    /// The API's JSON, pretty-printed.
    Json,
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => clean(s),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(" "),
        other => clean(&other.to_string()),
    }
}

fn field(v: &Value, key: &str) -> String {
    text(v.get(key).unwrap_or(&Value::Null))
}

/// Rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

/// `GET /tokens` items as a table.
pub fn token_list(items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|t| {
            vec![
                field(t, "id"),
                field(t, "name"),
                field(t, "status"),
                field(t, "scopes"),
                field(t, "expiresAt"),
                field(t, "lastUsedAt"),
            ]
        })
        .collect();
    table(
        &["ID", "NAME", "STATUS", "SCOPES", "EXPIRES", "LAST USED"],
        &rows,
    )
}

/// One token as `key: value` lines, recent uses last.
pub fn token_detail(t: &Value) -> String {
    let mut lines = Vec::new();
    for (label, key) in [
        ("id", "id"),
        ("name", "name"),
        ("description", "description"),
        ("status", "status"),
        ("scopes", "scopes"),
        ("created", "createdAt"),
        ("expires", "expiresAt"),
        ("last used", "lastUsedAt"),
        ("revoked", "revokedAt"),
        ("rotated from", "rotatedFrom"),
        ("rotated to", "rotatedTo"),
        ("dpop key", "dpopJkt"),
    ] {
        let value = t.get(key).unwrap_or(&Value::Null);
        // Optional fields are left out rather than shown empty.
        if value.is_null() && !matches!(key, "id" | "name" | "status" | "scopes" | "expiresAt") {
            continue;
        }
        lines.push(format!("{label:<13} {}", text(value)));
    }
    if let Some(uses) = t
        .get("recentUses")
        .and_then(Value::as_array)
        .filter(|u| !u.is_empty())
    {
        lines.push("recent uses:".into());
        for u in uses {
            lines.push(format!(
                "  {}  {}  {}",
                field(u, "at"),
                field(u, "ip"),
                field(u, "userAgent")
            ));
        }
    }
    lines.join("\n")
}

/// The type-specific part of an event.
fn event_details(e: &Value) -> String {
    let Some(obj) = e.as_object() else {
        return String::new();
    };
    obj.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "type" | "at"))
        .map(|(k, v)| format!("{k}={}", text(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `GET /tokens/{id}/events` items as a table.
pub fn events(items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|e| vec![field(e, "at"), field(e, "type"), event_details(e)])
        .collect();
    table(&["AT", "EVENT", "DETAILS"], &rows)
}

/// Pretty JSON.
pub fn json(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_table_aligns_columns() {
        assert_eq!(
            table(&["A", "BB"], &[vec!["long".into(), "x".into()]]),
            "A     BB\nlong  x"
        );
    }

    #[test]
    fn details_show_description_and_recent_uses() {
        let t = json!({"id":"abc","name":"ci","description":"deploys","status":"active","scopes":["a:read","b:write"],
            "expiresAt":"2030-01-01T00:00:00Z","lastUsedAt":null,
            "recentUses":[{"ip":"127.0.0.1","userAgent":null,"at":"2029-01-01T00:00:00Z"}]});
        let text = token_detail(&t);
        assert!(text.contains("description   deploys"), "{text}");
        assert!(text.contains("scopes        a:read b:write"), "{text}");
        assert!(
            text.contains("  2029-01-01T00:00:00Z  127.0.0.1  -"),
            "{text}"
        );
        assert!(!text.contains("last used"), "{text}");
    }

    #[test]
    fn events_show_their_specific_fields() {
        let e = json!([{"type":"updated","at":"t1","changes":["name","scopes"]},{"type":"revoked","at":"t2","by":"owner"}]);
        let text = events(e.as_array().map(Vec::as_slice).unwrap_or_default());
        assert!(text.contains("t1  updated  changes=name scopes"), "{text}");
        assert!(text.contains("t2  revoked  by=owner"), "{text}");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(text(&json!("a\u{1b}[31mb")), "a\\u{1b}[31mb");
    }
}
