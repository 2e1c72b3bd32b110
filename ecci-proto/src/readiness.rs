//! Placeholder: module `readiness` lands with the foundation issue.
