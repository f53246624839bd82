//! CSV with MISP's default columns and quoting (`app/Lib/Export/CsvExport.php`):
//! `uuid,event_id,category,type,value,comment,to_ids,date,object_relation,
//! attribute_tag,object_uuid,object_name,object_meta_category`; booleans as 1/0,
//! numeric fields bare, everything else double-quoted with `"` doubled; a missing
//! field is `""`; a blank line ends the document.
//!
//! **Spreadsheet-safe CSV** ([`CsvStyle::Spreadsheet`], opt-in): MISP writes
//! values verbatim, so a value or comment beginning with `=`, `+`, `-`, `@` (or a
//! tab or carriage return) becomes a formula when the file is opened in a
//! spreadsheet, and a CR/LF inside a quoted field — valid CSV, as MISP writes it —
//! splits the row for line-based tools. The default stays MISP's, because SIEMs
//! and scripts read these exports and an indicator must arrive exactly as stored
//! (`-1`, `+33 1 …`, `=?utf-8?…` are real values). Asked for (`spreadsheetSafe`
//! in `restSearch`, `--spreadsheet-safe` for `sluis export`), such cells get a
//! leading `'` (OWASP's advice) and CR/LF become spaces.

use crate::model::{Attribute, Event, Object};
use std::io::{self, Write};

pub const HEADER: &str = "uuid,event_id,category,type,value,comment,to_ids,date,object_relation,attribute_tag,object_uuid,object_name,object_meta_category";

/// How cells are written: as MISP writes them, or safe to open in a spreadsheet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CsvStyle {
    #[default]
    Misp,
    Spreadsheet,
}

impl CsvStyle {
    /// One CSV field in this style.
    pub fn field(self, out: &mut String, s: &str) {
        match self {
            CsvStyle::Misp => csv_field(out, s),
            CsvStyle::Spreadsheet => {
                if is_numeric(s) {
                    out.push_str(s);
                    return;
                }
                out.push('"');
                if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                    out.push('\'');
                }
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\"\""),
                        '\r' | '\n' => out.push(' '),
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
        }
    }
}

#[derive(Default)]
pub struct CsvWriter {
    line: String,
    style: CsvStyle,
}

/// PHP's `is_numeric` on the strings MISP holds: optional sign, digits with an
/// optional fraction, optional exponent.
fn is_numeric(s: &str) -> bool {
    let b = s.trim_start().as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut digits = i - start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let f = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        digits += i - f;
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let e = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

/// One CSV field, quoted as MISP quotes it.
pub fn csv_field(out: &mut String, s: &str) {
    if is_numeric(s) {
        out.push_str(s);
    } else {
        out.push('"');
        for c in s.chars() {
            if c == '"' {
                out.push('"');
            }
            out.push(c);
        }
        out.push('"');
    }
}

impl CsvWriter {
    pub fn new() -> Self {
        CsvWriter::default()
    }

    /// A writer whose cells are written in `style`.
    pub fn with_style(style: CsvStyle) -> Self {
        CsvWriter {
            line: String::new(),
            style,
        }
    }

    pub fn header(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(HEADER.as_bytes())?;
        out.write_all(b"\n")
    }

    pub fn footer(&mut self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(b"\n")
    }

    pub fn event(&mut self, out: &mut dyn Write, event: &Event) -> io::Result<()> {
        for a in &event.attributes {
            self.attribute(out, event, a, None)?;
        }
        for o in &event.objects {
            for a in &o.attributes {
                self.attribute(out, event, a, Some(o))?;
            }
        }
        Ok(())
    }

    pub fn attribute(
        &mut self,
        out: &mut dyn Write,
        event: &Event,
        a: &Attribute,
        object: Option<&Object>,
    ) -> io::Result<()> {
        let style = self.style;
        let l = &mut self.line;
        l.clear();
        style.field(l, &a.uuid.to_string());
        l.push(',');
        style.field(l, &event.id.or(a.event_id).unwrap_or(0).to_string());
        l.push(',');
        style.field(l, &a.category);
        l.push(',');
        style.field(l, &a.attr_type);
        l.push(',');
        style.field(l, &a.value);
        l.push(',');
        style.field(l, &a.comment);
        l.push(',');
        l.push(if a.ids() { '1' } else { '0' });
        l.push(',');
        style.field(l, &a.timestamp.to_string());
        l.push(',');
        match &a.object_relation {
            Some(r) => style.field(l, r),
            None => l.push_str("\"\""),
        }
        l.push(',');
        let tags: Vec<&str> = a.tags.iter().map(|t| t.name.as_str()).collect();
        if tags.is_empty() {
            l.push_str("\"\"");
        } else {
            style.field(l, &tags.join(","));
        }
        match object {
            Some(o) => {
                l.push(',');
                style.field(l, &o.uuid.to_string());
                l.push(',');
                style.field(l, &o.name);
                l.push(',');
                style.field(l, &o.meta_category);
            }
            None => l.push_str(",\"\",\"\",\"\""),
        }
        l.push('\n');
        out.write_all(l.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_like_misp() {
        let mut s = String::new();
        csv_field(&mut s, "1.2.3.4");
        s.push(',');
        csv_field(&mut s, "443");
        s.push(',');
        csv_field(&mut s, "say \"hi\", ok");
        s.push(',');
        csv_field(&mut s, "1e5");
        assert_eq!(s, "\"1.2.3.4\",443,\"say \"\"hi\"\", ok\",1e5");
        assert!(!is_numeric(""));
        assert!(!is_numeric("."));
        assert!(is_numeric("-1.5"));
        assert!(!is_numeric("1e"));
    }
}

#[cfg(test)]
mod style_tests {
    use super::*;

    fn cell(style: CsvStyle, s: &str) -> String {
        let mut out = String::new();
        style.field(&mut out, s);
        out
    }

    #[test]
    fn misp_style_is_verbatim_and_spreadsheet_style_neutralises() {
        let formula = "=HYPERLINK(\"http://x\")";
        assert_eq!(
            cell(CsvStyle::Misp, formula),
            "\"=HYPERLINK(\"\"http://x\"\")\""
        );
        assert_eq!(
            cell(CsvStyle::Spreadsheet, formula),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        for s in ["+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert!(cell(CsvStyle::Spreadsheet, s).starts_with("\"'"), "{s:?}");
        }
        // Numbers stay numbers, as MISP writes them.
        assert_eq!(cell(CsvStyle::Spreadsheet, "-12"), "-12");
        assert_eq!(cell(CsvStyle::Misp, "a\r\nb"), "\"a\r\nb\"");
        assert_eq!(cell(CsvStyle::Spreadsheet, "a\r\nb"), "\"a  b\"");
        assert_eq!(cell(CsvStyle::Spreadsheet, "plain"), "\"plain\"");
    }
}
