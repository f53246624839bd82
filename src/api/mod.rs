//! The MISP-compatible REST API: one file per route group, MISP's paths, bodies,
//! answers and error shapes, so PyMISP, curl scripts and SIEM connectors work
//! unchanged. Visibility is decided by `policy` on every path; writes go through
//! the store's one validator. The HTTP core the routes stand on (state, errors,
//! authentication, rate limits, the request pipeline) is [`crate::http`].

mod admin;
mod attachments;
mod attributes;
mod auth_keys;
mod elements;
mod event_reports;
mod events;
pub mod fed;
mod info;
mod object_templates;
mod objects;
mod organisations;
mod roles;
mod search;
mod sharing_groups;
mod sightings;
mod statistics;
mod support;
mod tag_catalogue;
mod tags;
#[cfg(test)]
pub(crate) mod testkit;
mod users;

use crate::http::{audited, auth, blocking, body, error, AppState};
use axum::routing::{get, post};
use axum::Router;

#[doc(hidden)]
pub use search::fuzz_parse_request;

/// Every route. Paths are matched after [`body::normalise_path`].
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(info::healthz))
        .route("/metrics", get(info::metrics))
        .route("/servers/getVersion", get(info::version))
        .route("/servers/getPyMISPVersion", get(info::pymisp_version))
        .route("/attributes/describeTypes", get(info::describe_types))
        .route("/users/view/{id}", get(users::view))
        .route("/admin/users/add", post(users::add))
        .route("/admin/users/index", get(users::index))
        .route("/admin/users/view/{id}", get(users::view))
        .route("/admin/users/edit/{id}", post(users::edit))
        .route("/admin/users/delete/{id}", post(users::delete))
        .route("/auth_keys/add/{user}", post(auth_keys::add))
        .route("/auth_keys/index", get(auth_keys::index))
        .route("/admin/organisations/add", post(organisations::add))
        .route(
            "/admin/organisations/edit/{id}",
            post(organisations::edit).put(organisations::edit),
        )
        .route("/organisations/index", get(organisations::index))
        .route("/organisations", get(organisations::index))
        .route(
            "/organisations/view/{id}",
            get(organisations::view).head(organisations::view),
        )
        .route("/events/add", post(events::add))
        .route(
            "/events/view/{id}",
            get(events::view).post(events::view).head(events::exists),
        )
        .route("/events/edit/{id}", post(events::edit).put(events::edit))
        .route(
            "/events/delete/{id}",
            post(events::delete).delete(events::delete),
        )
        .route("/events/publish/{id}", post(events::publish))
        .route("/events/alert/{id}", post(events::publish))
        .route("/events/unpublish/{id}", post(events::unpublish))
        .route("/events/index", get(events::index).post(events::index))
        .route("/events", get(events::index))
        .merge(attributes::routes())
        .merge(attachments::routes())
        .merge(event_reports::routes())
        .merge(objects::routes())
        .merge(object_templates::routes())
        .merge(tags::routes())
        .merge(sightings::routes())
        .merge(roles::routes())
        .merge(statistics::routes())
        .merge(sharing_groups::routes())
        .merge(search::routes())
        .merge(admin::routes())
        .merge(support::routes())
        .merge(fed::routes())
        // Metrics are labelled by route template (a fixed set), recorded here.
        .route_layer(axum::middleware::from_fn(crate::http::record_route))
        .layer(axum::extract::DefaultBodyLimit::max(state.limits.max_body))
        .method_not_allowed_fallback(info::method_not_allowed)
        .fallback(info::not_found)
        .with_state(state)
}
