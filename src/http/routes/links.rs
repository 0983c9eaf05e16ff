//! Share links: `/api/v1/{files,folders}/{id}/links`, `/api/v1/links/{id}`,
//! and what anyone with a link reaches at `/s/{token}…`.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stowage_actors::domain::ValidationError;
use stowage_actors::files::ListQuery;
use stowage_actors::links::{Links, NewLink, Opened};
use stowage_entity::files::ItemKind;
use stowage_entity::links::{self, LinkMode};
use utoipa::ToSchema;
use uuid::Uuid;

use super::files::DownloadParams;
use super::folders::{ChildrenParams, FolderBody, ItemBody};
use crate::http::PublicBase;
use crate::http::auth::Authenticated;
use crate::http::error::{ApiError, Problem};
use crate::http::json::JsonObject;
use crate::http::rate_limit::RateLimits;
use crate::http::webapp::{WebApp, is_navigation};

/// The cookie an unlock sets, scoped to its link's path.
const UNLOCK_COOKIE: &str = "stowage_link";

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkBody {
    pub id: Uuid,
    /// `<public url>/s/<token>`: give it to whoever should reach the item.
    pub url: String,
    pub item_id: Uuid,
    #[schema(inline, value_type = crate::http::schema::ItemType)]
    pub item_type: &'static str,
    #[schema(inline, value_type = crate::http::schema::LinkMode)]
    pub mode: &'static str,
    pub expires_at: Option<DateTime<Utc>>,
    pub has_password: bool,
    pub max_downloads: Option<i64>,
    pub downloads: i64,
    pub created_at: DateTime<Utc>,
}

impl LinkBody {
    fn new(link: links::Model, kind: ItemKind, base: &PublicBase) -> Self {
        Self {
            url: format!("{}/s/{}", base.0.trim_end_matches('/'), link.token),
            id: link.id,
            item_id: link.item_id,
            item_type: match kind {
                ItemKind::Folder => "folder",
                ItemKind::File | ItemKind::Revision => "file",
            },
            mode: match link.mode {
                LinkMode::View => "view",
                LinkMode::Upload => "upload",
            },
            expires_at: link.expires_at,
            has_password: link.password_hash.is_some(),
            max_downloads: link.max_downloads,
            downloads: link.downloads,
            created_at: link.created_at,
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// RFC 3339 time in the future; default: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whoever opens the link must give it; hashed like account passwords.
    #[schema(min_length = 1, max_length = 1024)]
    pub password: Option<String>,
    /// Downloads allowed through the link; default: no limit.
    #[schema(minimum = 1)]
    pub max_downloads: Option<u64>,
    /// `view` (default), or `upload` for a folder: a drop folder.
    #[schema(inline, value_type = Option<crate::http::schema::LinkMode>)]
    pub mode: Option<String>,
}

impl TryFrom<LinkRequest> for NewLink {
    type Error = ValidationError;

    fn try_from(r: LinkRequest) -> Result<Self, ValidationError> {
        Ok(NewLink {
            expires_at: r.expires_at,
            password: r.password,
            max_downloads: r.max_downloads,
            mode: match r.mode.as_deref() {
                None | Some("view") => LinkMode::View,
                Some("upload") => LinkMode::Upload,
                Some(_) => return Err(ValidationError::new("mode", "must be `view` or `upload`")),
            },
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkList {
    pub items: Vec<LinkBody>,
}

async fn create(
    kind: ItemKind,
    caller: Authenticated,
    links: web::Data<Links>,
    base: web::Data<PublicBase>,
    id: Uuid,
    body: LinkRequest,
) -> Result<HttpResponse, ApiError> {
    let new = NewLink::try_from(body)?;
    let link = links.create(caller.0.user_id, id, kind, new).await?;
    Ok(HttpResponse::Created().json(LinkBody::new(link, kind, &base)))
}

async fn list(
    kind: ItemKind,
    caller: Authenticated,
    links: web::Data<Links>,
    base: web::Data<PublicBase>,
    id: Uuid,
) -> Result<web::Json<LinkList>, ApiError> {
    let items = links.list(caller.0.user_id, id, kind).await?;
    Ok(web::Json(LinkList {
        items: items
            .into_iter()
            .map(|l| LinkBody::new(l, kind, &base))
            .collect(),
    }))
}

/// A share link to one of your files (owner only).
#[utoipa::path(post, path = "/api/v1/files/{id}/links", tag = "links", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = LinkRequest,
    responses((status = 201, body = LinkBody), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem, description = "`file_pending`")))]
pub async fn create_for_file(
    caller: Authenticated,
    links: web::Data<Links>,
    base: web::Data<PublicBase>,
    id: web::Path<Uuid>,
    body: JsonObject<LinkRequest>,
) -> Result<HttpResponse, ApiError> {
    create(ItemKind::File, caller, links, base, *id, body.into_inner()).await
}

/// A share link to one of your folders (owner only); `mode: upload` makes a drop folder.
#[utoipa::path(post, path = "/api/v1/folders/{id}/links", tag = "links", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = LinkRequest,
    responses((status = 201, body = LinkBody), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)))]
pub async fn create_for_folder(
    caller: Authenticated,
    links: web::Data<Links>,
    base: web::Data<PublicBase>,
    id: web::Path<Uuid>,
    body: JsonObject<LinkRequest>,
) -> Result<HttpResponse, ApiError> {
    create(
        ItemKind::Folder,
        caller,
        links,
        base,
        *id,
        body.into_inner(),
    )
    .await
}

/// The links to one of your files.
#[utoipa::path(get, path = "/api/v1/files/{id}/links", tag = "links", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = LinkList), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_for_file(
    caller: Authenticated,
    links: web::Data<Links>,
    base: web::Data<PublicBase>,
    id: web::Path<Uuid>,
) -> Result<web::Json<LinkList>, ApiError> {
    list(ItemKind::File, caller, links, base, *id).await
}

/// The links to one of your folders.
#[utoipa::path(get, path = "/api/v1/folders/{id}/links", tag = "links", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = LinkList), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn list_for_folder(
    caller: Authenticated,
    links: web::Data<Links>,
    base: web::Data<PublicBase>,
    id: web::Path<Uuid>,
) -> Result<web::Json<LinkList>, ApiError> {
    list(ItemKind::Folder, caller, links, base, *id).await
}

/// End a link: it answers 404 from then on.
#[utoipa::path(delete, path = "/api/v1/links/{id}", tag = "links", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = Problem, description = "`link_not_found`")))]
pub async fn revoke(
    caller: Authenticated,
    links: web::Data<Links>,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    links.revoke(caller.0.user_id, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Opens the link behind `token`: its password from the `Link-Password`
/// header (one attempt of the link's budget) or the unlock cookie.
pub(crate) async fn open(
    req: &HttpRequest,
    links: &Links,
    limits: &RateLimits,
    token: &str,
) -> Result<Opened, ApiError> {
    let password = req
        .headers()
        .get("link-password")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let cookie = req.cookie(UNLOCK_COOKIE);
    let unlocked = cookie.as_ref().map(|c| c.value());
    // Every password sent spends an attempt, cookie or not: a forged
    // cookie must not buy unlimited guesses.
    if password.is_some() {
        spend_attempt(links, limits, token).await?;
    }
    Ok(links.open(token, password, unlocked).await?)
}

async fn spend_attempt(links: &Links, limits: &RateLimits, token: &str) -> Result<(), ApiError> {
    let id = links.id_of(token).await?;
    limits
        .link_attempt(id)
        .await
        .map_err(ApiError::too_many_requests)
}

fn redirect(url: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, url))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

#[derive(Debug, Serialize)]
struct LinkedFolder {
    folder: FolderBody,
    items: Vec<ItemBody>,
    next_cursor: Option<String>,
}

/// A file: one counted download, by redirect. A folder: its children.
async fn serve(
    req: &HttpRequest,
    links: &Links,
    base: &PublicBase,
    opened: &Opened,
    item: Option<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let found = links.item(opened, item).await?;
    match found.kind {
        ItemKind::File | ItemKind::Revision => {
            let params = web::Query::<DownloadParams>::from_query(req.query_string())
                .map_err(|_| ValidationError::new("disposition", "must be inline or attachment"))?;
            let url = links
                .download(opened, &found, params.disposition()?)
                .await?;
            Ok(redirect(&url))
        }
        ItemKind::Folder => {
            let params = web::Query::<ChildrenParams>::from_query(req.query_string())
                .map_err(|_| ValidationError::new("query", "limit, cursor, q and sort only"))?;
            let query = ListQuery::try_from(params.into_inner())?;
            let page = links.children(&found, &query).await?;
            Ok(HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(LinkedFolder {
                    folder: FolderBody::new(Links::view(found)),
                    items: page
                        .items
                        .into_iter()
                        .map(|v| ItemBody::new(v, base))
                        .collect(),
                    next_cursor: page.next_cursor,
                }))
        }
    }
}

/// What a link shows: a file by redirect (one download), a folder as JSON.
/// A browser navigating to the link gets the web app's page instead,
/// unless the link simply downloads a file: the app asks for the password,
/// lists the folder, or takes a drop folder's uploads (or says why the link
/// does not work).
pub async fn get(
    req: HttpRequest,
    links: web::Data<Links>,
    limits: web::Data<RateLimits>,
    base: web::Data<PublicBase>,
    app: Option<web::Data<WebApp>>,
    token: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let page = app.filter(|_| is_navigation(&req));
    let opened = match (open(&req, &links, &limits, &token).await, &page) {
        (Ok(opened), _) => opened,
        (Err(_), Some(app)) => return Ok(app.index()),
        (Err(e), None) => return Err(e),
    };
    let downloads = opened.link.mode == LinkMode::View && opened.item.kind != ItemKind::Folder;
    match page {
        Some(app) if !downloads => Ok(app.index()),
        // A download the link no longer allows (used up, say): the app's
        // page says so.
        Some(app) => Ok(serve(&req, &links, &base, &opened, None)
            .await
            .unwrap_or_else(|_| app.index())),
        None => serve(&req, &links, &base, &opened, None).await,
    }
}

/// A file or folder below a linked folder; anything else is 404.
pub async fn get_item(
    req: HttpRequest,
    links: web::Data<Links>,
    limits: web::Data<RateLimits>,
    base: web::Data<PublicBase>,
    path: web::Path<(String, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (token, item) = path.into_inner();
    let opened = open(&req, &links, &limits, &token).await?;
    serve(&req, &links, &base, &opened, Some(item)).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlockRequest {
    password: String,
}

/// The link's password, once: 204 and a cookie that opens this link.
pub async fn unlock(
    links: web::Data<Links>,
    limits: web::Data<RateLimits>,
    base: web::Data<PublicBase>,
    token: web::Path<String>,
    body: JsonObject<UnlockRequest>,
) -> Result<HttpResponse, ApiError> {
    spend_attempt(&links, &limits, &token).await?;
    let (_, grant) = links
        .unlock(&token, body.into_inner().password)
        .await
        .map_err(ApiError::from)?;
    let cookie = Cookie::build(UNLOCK_COOKIE, grant)
        .path(format!("/s/{}", token.as_str()))
        .http_only(true)
        .secure(base.0.starts_with("https://"))
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::seconds(
            stowage_actors::links::UNLOCK_TTL.as_secs() as i64,
        ))
        .finish();
    Ok(HttpResponse::NoContent().cookie(cookie).finish())
}
