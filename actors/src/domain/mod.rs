//! Types that user input is parsed into at the edge. Each has a private field
//! and a `parse` that says exactly what is wrong, so code past the edge never
//! re-checks a value.

mod byte_range;
mod content_type;
mod display_name;
mod disposition;
mod email;
mod file_name;
mod object_key;
mod password;
mod sha256;

pub use byte_range::{ByteRange, RangeError};
pub use content_type::ContentType;
pub use display_name::DisplayName;
pub use disposition::Disposition;
pub use email::Email;
pub use file_name::FileName;
pub use object_key::ObjectKey;
pub use password::Password;
pub use sha256::Sha256Hex;

/// A value a client sent that cannot be accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The JSON field or parameter at fault.
    pub field: &'static str,
    /// What is wrong and what would be accepted, for the person reading it.
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}
