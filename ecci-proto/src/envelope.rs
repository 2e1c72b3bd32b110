//! Placeholder: module `envelope` lands with the foundation issue.
