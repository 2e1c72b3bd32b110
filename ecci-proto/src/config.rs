//! Placeholder: module `config` lands with the foundation issue.
