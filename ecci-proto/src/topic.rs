//! Placeholder: module `topic` lands with the foundation issue.
