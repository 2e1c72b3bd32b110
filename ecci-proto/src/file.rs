//! Placeholder: module `file` lands with the foundation issue.
