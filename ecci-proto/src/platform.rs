//! Placeholder: module `platform` lands with the foundation issue.
