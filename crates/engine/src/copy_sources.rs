//! From the Dockerfile's COPY/ADD sources to what the planner takes.

use hoist_dockerfile::CopySource;

use crate::copy::InlineFile;

/// The heredoc sources, in order, as inline files (their content as the Dockerfile
/// scope expanded it).
pub fn inline_files(sources: &[CopySource]) -> Vec<InlineFile> {
    sources
        .iter()
        .filter_map(|s| match s {
            CopySource::Heredoc(h) => Some(InlineFile {
                name: h.name.clone(),
                content: h.effective_content().into_bytes(),
            }),
            CopySource::Path(_) => None,
        })
        .collect()
}
