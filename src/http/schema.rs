//! The closed sets the OpenAPI document names for inputs the server checks
//! in code, so that a request the document calls valid is one the server
//! accepts. Schema-only types: the handlers parse strings into the domain's
//! own types. (Patterns and bounds stand on the request fields themselves:
//! a file name `^(?!\.\.?$)[^/\u0000-\u001f\u007f-\u009f]+$` of 1 to 255
//! characters, a media type `type/subtype[; parameters]`, a hex SHA-256.)

use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

/// The `type` of a file object: always `file`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum FileType {
    File,
}

/// The `type` of a folder object: always `folder`.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum FolderType {
    Folder,
}

/// What a link points at.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ItemType {
    File,
    Folder,
}

/// What a link lets its holder do.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum LinkMode {
    View,
    Upload,
}

/// The role a share gives.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ShareRole {
    Viewer,
    Editor,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Visibility {
    Private,
    Public,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Disposition {
    Attachment,
    Inline,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum View {
    Owned,
    Shared,
    Shortcuts,
    Trash,
}

#[derive(ToSchema)]
pub enum Sort {
    #[schema(rename = "name")]
    Name,
    #[schema(rename = "-name")]
    NameDescending,
    #[schema(rename = "created_at")]
    CreatedAt,
    #[schema(rename = "-created_at")]
    CreatedAtDescending,
    #[schema(rename = "size")]
    Size,
    #[schema(rename = "-size")]
    SizeDescending,
}

/// Raw bytes, as tus sends them: `{"type": "string", "format": "binary"}`.
pub struct Octets;

impl utoipa::PartialSchema for Octets {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Octets {}

/// What a key may do.
#[derive(ToSchema)]
pub enum KeyScope {
    #[schema(rename = "files:read")]
    FilesRead,
    #[schema(rename = "files:write")]
    FilesWrite,
    #[schema(rename = "admin")]
    Admin,
}

/// The event types a webhook can ask for, or `*` (alone) for all.
#[derive(ToSchema)]
pub enum WebhookEvent {
    #[schema(rename = "*")]
    All,
    #[schema(rename = "file.available")]
    FileAvailable,
    #[schema(rename = "file.renamed")]
    FileRenamed,
    #[schema(rename = "file.moved")]
    FileMoved,
    #[schema(rename = "file.deleted")]
    FileDeleted,
    #[schema(rename = "file.restored")]
    FileRestored,
    #[schema(rename = "file.purged")]
    FilePurged,
    #[schema(rename = "file.shared")]
    FileShared,
    #[schema(rename = "file.unshared")]
    FileUnshared,
    #[schema(rename = "file.revised")]
    FileRevised,
    #[schema(rename = "folder.created")]
    FolderCreated,
    #[schema(rename = "folder.renamed")]
    FolderRenamed,
    #[schema(rename = "folder.moved")]
    FolderMoved,
    #[schema(rename = "folder.deleted")]
    FolderDeleted,
    #[schema(rename = "folder.restored")]
    FolderRestored,
    #[schema(rename = "folder.purged")]
    FolderPurged,
    #[schema(rename = "folder.shared")]
    FolderShared,
    #[schema(rename = "folder.unshared")]
    FolderUnshared,
    #[schema(rename = "upload.expired")]
    UploadExpired,
}
