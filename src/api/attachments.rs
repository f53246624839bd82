//! `attributes/download/<id|uuid>`: the file of an `attachment` or
//! `malware-sample` attribute, as MISP's `AttributesController::download`
//! serves it.
//!
//! What is served is the attribute's `data` decoded: the raw file for an
//! attachment, and for a malware sample the stored bytes as they came (by MISP
//! convention the password-`infected` zip holding the sample, which is what a
//! MISP peer sends and what PyMISP's `malware_binary` opens). The answers
//! follow MISP:
//!
//! | case | answer |
//! |---|---|
//! | an id that is neither a number nor a uuid | 404 `Invalid attribute ID.` |
//! | unknown, invisible, deleted, or not a file type | 401 `Attribute does not exist or you do not have the permission to download this attribute.` (one answer, so nothing is learnt about what exists) |
//! | a file attribute without content | 404 `File '<event id>/<attribute id>' does not exist.` |
//! | otherwise | 200, `Content-Disposition: attachment; filename="…"` |
//!
//! One difference, on purpose: MISP picks the content type from the file name
//! (`.html` → `text/html`), which lets a synced "attachment" run as a page in
//! the analyst's browser. Here an attachment is always
//! `application/octet-stream` and a malware sample `application/zip`, always
//! as a download, with `nosniff` and a sandboxing CSP (`docs/api.md`).

use super::auth::Caller;
use super::elements::{attr_visible, exception, load_attribute, ElementId};
use super::error::ApiError;
use super::{blocking, AppState};
use crate::model::edit::attr_at;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;

pub fn routes() -> Router<AppState> {
    Router::new().route("/attributes/download/{id}", get(download))
}

const NO_ACCESS: &str =
    "Attribute does not exist or you do not have the permission to download this attribute.";

/// What the lookup found.
enum Found {
    File {
        name: String,
        zip: bool,
        bytes: Vec<u8>,
    },
    Empty {
        event: u64,
        attribute: u64,
    },
    Nothing,
}

/// `GET attributes/download/<id|uuid>` (see the module docs).
pub async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(id) = ElementId::parse(&id) else {
        return Ok(exception(StatusCode::NOT_FOUND, "Invalid attribute ID."));
    };
    let store = state.store.clone();
    let viewer = caller.viewer();
    let found = blocking(move || {
        let Some((ev, slot)) = load_attribute(&store, id)? else {
            return Ok(Found::Nothing);
        };
        let a = attr_at(&ev, slot);
        let zip = a.attr_type == "malware-sample";
        if !attr_visible(&viewer, &ev, slot) || a.deleted || !(zip || a.attr_type == "attachment") {
            return Ok(Found::Nothing);
        }
        let decoded = a
            .data
            .as_deref()
            .filter(|d| !d.is_empty())
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
        Ok(match decoded {
            Some(bytes) => Found::File {
                name: file_name(&a.attr_type, &a.value),
                zip,
                bytes,
            },
            None => Found::Empty {
                event: ev.id.unwrap_or(0),
                attribute: a.id.unwrap_or(0),
            },
        })
    })
    .await?;
    Ok(match found {
        Found::Nothing => exception(StatusCode::UNAUTHORIZED, NO_ACCESS),
        Found::Empty { event, attribute } => exception(
            StatusCode::NOT_FOUND,
            &format!("File '{event}/{attribute}' does not exist."),
        ),
        Found::File { name, zip, bytes } => {
            let kind = if zip {
                "application/zip"
            } else {
                "application/octet-stream"
            };
            let disposition = format!("attachment; filename=\"{}\"", header_safe(&name));
            let mut resp = (StatusCode::OK, bytes).into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            );
            resp
        }
    })
}

/// The download name MISP gives: an attachment's value (its file name); a
/// malware sample's file name (before `|`, after any Windows path) plus
/// `.zip`. (MISP splits an attachment's name at its extension and joins it
/// again, which turns `README` into `READM.`; its intent, the name, is kept.)
fn file_name(attr_type: &str, value: &str) -> String {
    if attr_type == "malware-sample" {
        let name = value.split('|').next().unwrap_or(value);
        let base = name.rsplit(['\\', '/']).next().unwrap_or(name);
        format!("{base}.zip")
    } else {
        value.rsplit(['\\', '/']).next().unwrap_or(value).to_owned()
    }
}

/// A file name fit for a quoted `Content-Disposition` parameter: printable
/// ASCII without `"` and `\`; anything else becomes `_`.
fn header_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.trim().is_empty() {
        "download".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_misp_gives_them() {
        assert_eq!(file_name("attachment", "report.pdf"), "report.pdf");
        assert_eq!(file_name("attachment", "README"), "README");
        assert_eq!(
            file_name(
                "malware-sample",
                "testfile.py|d41d8cd98f00b204e9800998ecf8427e"
            ),
            "testfile.py.zip"
        );
        assert_eq!(
            file_name(
                "malware-sample",
                "C:\\temp\\evil.exe|d41d8cd98f00b204e9800998ecf8427e"
            ),
            "evil.exe.zip"
        );
        assert_eq!(header_safe("a\"b\\c\r\nd é.txt"), "a_b_c__d _.txt");
        assert_eq!(header_safe("\u{7}"), "_");
        assert_eq!(header_safe(""), "download");
    }
}
