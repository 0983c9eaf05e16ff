//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::routes::{account, auth, files, multipart, ops, shares, tus, uploads};

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
        ops::openapi,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "account", description = "The caller's account"),
        (name = "uploads", description = "Putting files in"),
        (name = "files", description = "Reading, listing, changing and downloading files"),
        (name = "sharing", description = "Shares and shortcuts"),
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
