pub mod account;
pub mod auth;
pub mod blobs;
pub mod files;
pub mod multipart;
pub mod ops;
pub mod shares;
pub mod uploads;
