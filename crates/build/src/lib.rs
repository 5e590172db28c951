//! hoist-build (work in progress).
