//! In-process test kit shared by the attribute, object and tag tests: a temp
//! store with two organisations, and requests through the real router.

use crate::http::AppState;
use crate::store::{Store, StoreOptions};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

pub struct Kit {
    pub state: AppState,
    _dir: tempfile::TempDir,
    /// Org A: a user, a read-only user. Org B: a user.
    pub a: String,
    pub a_ro: String,
    pub b: String,
}

impl Kit {
    pub fn new() -> Kit {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            StoreOptions {
                cache_bytes: 8 << 20,
                ..Default::default()
            },
        )
        .unwrap();
        let org_a = store.add_org(Uuid::new_v4(), "Org A", true).unwrap();
        let org_b = store.add_org(Uuid::new_v4(), "Org B", true).unwrap();
        let key = |email: &str, org: Uuid, role: u64| {
            let u = store.add_user(email, org, role).unwrap();
            store.add_auth_key(u.id, "test", 0).unwrap().0
        };
        let a = key("a@a.example", org_a.uuid, crate::policy::roles::USER.id);
        let a_ro = key(
            "ro@a.example",
            org_a.uuid,
            crate::policy::roles::READ_ONLY.id,
        );
        let b = key("b@b.example", org_b.uuid, crate::policy::roles::USER.id);
        let state = crate::http::test_state(Arc::new(store), org_a.uuid);
        Kit {
            state,
            _dir: dir,
            a,
            a_ro,
            b,
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("Authorization", key)
            .header("Accept", "application/json")
            .header("content-type", "application/json")
            .body(
                body.map(|b| Body::from(b.to_string()))
                    .unwrap_or_else(Body::empty),
            )
            .unwrap();
        let resp = crate::http::handle(
            crate::api::router(self.state.clone()),
            self.state.clone(),
            req,
        )
        .await;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Creates an event as `key` and returns (local id, uuid).
    pub async fn event(&self, key: &str, body: Value) -> (String, String) {
        let (st, v) = self.call("POST", "/events/add", key, Some(body)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        (
            v["Event"]["id"].as_str().unwrap().to_owned(),
            v["Event"]["uuid"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn get_event(&self, id: &str) -> Value {
        let (st, v) = self
            .call(
                "POST",
                &format!("/events/view/{id}"),
                &self.a,
                Some(serde_json::json!({"deleted": [0, 1]})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v["Event"].clone()
    }
}

/// The error message PyMISP turns into a proposal retry.
pub const NO_PERMISSION: &str = "You do not have permission to do that.";
