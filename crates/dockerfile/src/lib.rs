//! hoist-dockerfile (work in progress).
