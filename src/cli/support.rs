//! `sluis support list` and `sluis support show UUID`: the node's
//! incident-support cases for operators ([`crate::support`]). Read from the
//! database when the node is stopped, else from the running node's API
//! (`GET /support/requests[/UUID]` with the admin key, see [`super::remote`]).

use super::remote::{get_json, node_url};
use super::CliError;
use crate::config::Config;
use crate::store::{Store, StoreError};
use crate::support::Case;
use crate::support::CaseStore;
use serde_json::{json, Value};

/// Every case (`uuid: None`) or one, as the API shows them to a site admin.
pub fn cases(cfg: &Config, uuid: Option<uuid::Uuid>, url: Option<&str>) -> Result<Value, CliError> {
    let own = cfg.node.org_uuid.unwrap_or_default();
    match Store::open(&cfg.db_dir(), cfg.store_options()) {
        Ok(store) => {
            let now = crate::model::time::now_secs();
            let show = |ids: &[uuid::Uuid]| -> Vec<Value> {
                ids.iter()
                    .map(|u| match store.get_event(u) {
                        Ok(Some(e)) => json!({"uuid": u, "info": e.info, "date": e.date}),
                        _ => json!({"uuid": u}),
                    })
                    .collect()
            };
            let one = |u: &uuid::Uuid, timeline: bool| -> Result<Option<Value>, StoreError> {
                Ok(Case::from_records(store.case_records(u)?)
                    .map(|c| c.to_json(own, now, &show, timeline)))
            };
            match uuid {
                Some(u) => one(&u, true)?.ok_or_else(|| CliError::Remote {
                    url: cfg.db_dir().display().to_string(),
                    reason: format!("no support request {u}"),
                }),
                None => {
                    let mut rows = Vec::new();
                    for u in store.case_uuids()?.iter().rev() {
                        rows.extend(one(u, false)?);
                    }
                    Ok(Value::Array(rows))
                }
            }
        }
        Err(StoreError::Locked { .. }) => {
            let base = node_url(cfg, url)?;
            let path = match uuid {
                Some(u) => format!("/support/requests/{u}"),
                None => "/support/requests".into(),
            };
            get_json(cfg, &base, &path, "sluis support")
        }
        Err(e) => Err(e.into()),
    }
}

/// One line per case: status, overdue, exercise label, who asked, title.
pub fn render_list(rows: &Value) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    let rows = rows.as_array().unwrap_or(&empty);
    if rows.is_empty() {
        out.push_str("no support requests\n");
    }
    for r in rows {
        out.push_str(&format!(
            "{}  {:<11} {}{}{} from {}: {}\n",
            r["uuid"].as_str().unwrap_or("-"),
            r["status"].as_str().unwrap_or("-"),
            if r["overdue"] == true { "OVERDUE " } else { "" },
            if r["exercise"] == true {
                "[EXERCISE] "
            } else {
                ""
            },
            r["severity"].as_str().unwrap_or("-"),
            r["requester"]["name"].as_str().unwrap_or("-"),
            r["title"].as_str().unwrap_or("-"),
        ));
    }
    out
}

/// A case and its timeline, for reading.
pub fn render_case(c: &Value) -> String {
    let mut out = String::new();
    let label = if c["exercise"] == true {
        "[EXERCISE] "
    } else {
        ""
    };
    out.push_str(&format!(
        "{label}{}\n  case {}  status {}{}\n  from {} ({}), severity {}, TLP:{}, category {}\n  asks for: {}\n  addressed: {}\n  respond by: {}  waiting for: {}\n",
        c["title"].as_str().unwrap_or("-"),
        c["uuid"].as_str().unwrap_or("-"),
        c["status"].as_str().unwrap_or("-"),
        if c["overdue"] == true { " (OVERDUE)" } else { "" },
        c["requester"]["name"].as_str().unwrap_or("-"),
        c["requester"]["org_uuid"].as_str().unwrap_or("-"),
        c["severity"].as_str().unwrap_or("-"),
        c["tlp"].as_str().unwrap_or("-").to_uppercase(),
        c["category"].as_str().unwrap_or("-"),
        list(&c["capabilities"]),
        list(&c["addressed"]),
        c["respond_by"],
        list(&c["waiting_for"]),
    ));
    if let Some(d) = c["description"].as_str().filter(|d| !d.is_empty()) {
        out.push_str(&format!("  {d}\n"));
    }
    for e in c["linked_events"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  linked event {} {}\n",
            e["uuid"].as_str().unwrap_or("-"),
            e["info"].as_str().unwrap_or("")
        ));
    }
    for t in c["timeline"].as_array().into_iter().flatten() {
        let r = &t["record"];
        let kind = r["type"].as_str().unwrap_or("-");
        let detail = match kind {
            "offer" => format!(
                "{} — contact {}, {}",
                r["capability"].as_str().unwrap_or(""),
                r["contact"].as_str().unwrap_or(""),
                r["availability"].as_str().unwrap_or("")
            ),
            "finding" => r["text"].as_str().unwrap_or("").to_owned(),
            "decline" => r["reason"].as_str().unwrap_or("").to_owned(),
            "status" => r["status"].as_str().unwrap_or("").to_owned(),
            _ => r["note"].as_str().unwrap_or("").to_owned(),
        };
        out.push_str(&format!(
            "  {} {} {}: {}\n",
            t["created"],
            t["author"]["name"].as_str().unwrap_or("-"),
            kind,
            detail
        ));
    }
    out
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}
