//! hoist-sandbox (work in progress).
