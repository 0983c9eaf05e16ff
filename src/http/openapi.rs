//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};

use super::routes::{
    account, admin, auth, files, folders, keys, links, multipart, ops, revisions, shares, tus,
    uploads, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stowage",
        description = "File storage: uploads (presigned, multipart, tus), sharing, trash. \
            Every error is application/problem+json with a stable `code`."
    ),
    paths(
        auth::signup,
        auth::login,
        auth::refresh,
        auth::logout,
        account::me,
        keys::create,
        keys::list,
        keys::revoke,
        admin::create,
        admin::find,
        admin::get,
        admin::patch,
        webhooks::create,
        webhooks::list,
        webhooks::get,
        webhooks::patch,
        webhooks::delete,
        webhooks::deliveries,
        webhooks::retry,
        uploads::create,
        uploads::batch,
        multipart::create,
        multipart::part_url,
        multipart::parts,
        multipart::complete,
        multipart::abort,
        multipart::list_sessions,
        multipart::get_session,
        tus::options,
        tus::create,
        tus::head,
        tus::patch,
        tus::delete,
        files::list,
        files::get,
        files::patch,
        files::delete,
        files::restore,
        shares::share,
        shares::list,
        shares::revoke,
        shares::add_shortcut,
        shares::remove_shortcut,
        files::confirm,
        files::content,
        files::download_url,
        revisions::list,
        revisions::content,
        revisions::download_url,
        revisions::restore,
        revisions::delete,
        folders::create,
        folders::get,
        folders::patch,
        folders::delete,
        folders::restore,
        folders::children,
        folders::resolve,
        folders::empty_trash,
        folders::share,
        folders::shares,
        folders::unshare,
        links::create_for_file,
        links::list_for_file,
        links::create_for_folder,
        links::list_for_folder,
        links::revoke,
        ops::openapi,
    ),
    modifiers(&BearerAuth, &ProblemResponses),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "account", description = "The caller's account"),
        (name = "keys", description = "Personal and service keys (stk_…)"),
        (name = "admin", description = "Users, for a product's back end with an admin key"),
        (name = "webhooks", description = "Signed deliveries of the domain events"),
        (name = "uploads", description = "Putting files in"),
        (name = "files", description = "Reading, listing, changing and downloading files"),
        (name = "sharing", description = "Shares and shortcuts"),
        (name = "folders", description = "Folders: the tree, paths, moves, folder shares"),
        (name = "links", description = "Share links: /s/{token} for anyone who has one"),
        (name = "meta", description = "This description"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON, as `stowage openapi` prints it.
pub fn document() -> anyhow::Result<String> {
    Ok(ApiDoc::openapi().to_pretty_json()?)
}

/// A unique `operationId` from the method and the path (`GET
/// /api/v1/files/{id}/revisions` → `get_files_id_revisions`): handler
/// names repeat across modules (`list`, `get`, …), and code generators
/// need one name per operation.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for segment in path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "api" && *s != "v1")
    {
        id.push('_');
        id.extend(
            segment
                .trim_matches(|c| c == '{' || c == '}')
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    id
}

/// What every route can answer besides its own responses, declared once
/// (and a header is never `null`: an optional one is absent, not empty):
/// every error is `application/problem+json`; a route behind a bearer token
/// can answer 401; one with path, query or JSON body input 400 (a malformed
/// id, query or body); one with a JSON body 413 and 415; every counted
/// `/api/v1` route 429.
struct ProblemResponses;

/// The media type of every error ([`super::error::PROBLEM_JSON`]).
const PROBLEM: &str = super::error::PROBLEM_JSON;

impl Modify for ProblemResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let operations = [
                ("GET", &mut item.get),
                ("PUT", &mut item.put),
                ("POST", &mut item.post),
                ("DELETE", &mut item.delete),
                ("OPTIONS", &mut item.options),
                ("HEAD", &mut item.head),
                ("PATCH", &mut item.patch),
            ];
            for (method, operation) in operations {
                if let Some(operation) = operation {
                    complete(path, method, operation);
                }
            }
        }
    }
}

fn complete(path: &str, method: &str, op: &mut Operation) {
    op.operation_id = Some(operation_id(method, path));
    for param in op.parameters.iter_mut().flatten() {
        if param.parameter_in == ParameterIn::Header
            && let Some(RefOr::T(Schema::Object(schema))) = &mut param.schema
            && let SchemaType::Array(types) = &schema.schema_type
        {
            let types: Vec<Type> = types
                .iter()
                .filter(|t| **t != Type::Null)
                .cloned()
                .collect();
            if let [only] = types.as_slice() {
                schema.schema_type = SchemaType::Type(only.clone());
            }
        }
    }
    let responses = &mut op.responses.responses;
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response
            && status.as_str() >= "400"
            && let Some(json) = response.content.shift_remove("application/json")
        {
            response.content.insert(PROBLEM.to_owned(), json);
        }
    }
    let mut add = |status: &str, why: &str| {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(problem(why)));
    };
    if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
        add(
            "401",
            "no valid bearer token (`unauthorized`, `token_expired`, `session_revoked`)",
        );
    }
    let params = op.parameters.as_deref().unwrap_or_default();
    let has = |place: ParameterIn| params.iter().any(|p| p.parameter_in == place);
    let json_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    if has(ParameterIn::Path) || has(ParameterIn::Query) || json_body {
        add(
            "400",
            "malformed input: `invalid_path`, `invalid_query`, `invalid_body`, `invalid_field`",
        );
    }
    if json_body {
        add(
            "413",
            "the body is over this route's limit (`payload_too_large`)",
        );
        add("415", "the body is not JSON (`unsupported_media_type`)");
    }
    let moves_bytes =
        path.starts_with("/api/v1/tus/") && matches!(method, "PATCH" | "HEAD" | "POST");
    if path.starts_with("/api/v1/") && !moves_bytes && method != "OPTIONS" {
        add(
            "429",
            "over the request budget (`rate_limited`); `Retry-After` says when to retry",
        );
    }
}

fn problem(description: &str) -> Response {
    let mut response = Response::new(description);
    response.content.insert(
        PROBLEM.to_owned(),
        Content::new(Some(RefOr::<Schema>::Ref(Ref::from_schema_name("Problem")))),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_an_id_of_its_own() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_owned();
                assert!(seen.insert(id.clone()), "{method} {path}: {id} twice");
            }
        }
        assert!(seen.contains("get_files_id_revisions"), "{seen:?}");
    }

    /// The web app's client types are generated from `web/openapi.json`:
    /// it must be this document.
    #[test]
    fn the_web_apps_copy_of_the_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/web/openapi.json");
        let copy: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert!(
            copy == serde_json::to_value(ApiDoc::openapi()).unwrap(),
            "web/openapi.json is stale: run `cargo run -- openapi > web/openapi.json`"
        );
    }

    #[test]
    fn every_error_is_problem_json_and_every_secured_route_can_answer_401() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                operations += 1;
                let responses = op["responses"].as_object().unwrap();
                for (status, response) in responses {
                    if status.as_str() >= "400" {
                        let content = response["content"].as_object().unwrap();
                        assert!(
                            content.keys().all(|k| k == PROBLEM),
                            "{method} {path} {status}: {content:?}"
                        );
                    }
                }
                if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                    assert!(responses.contains_key("401"), "{method} {path}");
                }
                for param in op["parameters"].as_array().into_iter().flatten() {
                    if param["in"] == "header" {
                        assert_ne!(
                            param["schema"]["type"],
                            serde_json::json!(["string", "null"])
                        );
                    }
                }
            }
        }
        assert!(operations >= 30, "{operations}");
    }
}
