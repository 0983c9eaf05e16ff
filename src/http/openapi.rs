//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::routes::{account, auth, ops};

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
        ops::openapi,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "account", description = "The caller's account"),
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
