//! `CACHE_FROM` / `CACHE_TO`: the build's `--cache-from` / `--cache-to` as task params,
//! in BuildKit's syntax, several specs one a line (or separated by spaces). Local cache
//! directories are relative to the task's working directory; the registry credentials
//! of the task (`DOCKER_USERNAME`…, `HOIST_REGISTRY_AUTH`) apply to cache refs too.

use std::path::Path;

use hoist_engine::remote_cache::{CacheExport, CacheImport, ExportTarget, ImportSource};

/// Parse both params; errors go to `err(param, message)`.
pub fn parse(
    from: Option<&str>,
    to: Option<&str>,
    workdir: &Path,
    err: &mut dyn FnMut(&str, String),
) -> (Vec<CacheImport>, Vec<CacheExport>) {
    let rel = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            workdir.join(p)
        }
    };
    let mut imports = Vec::new();
    for s in from.unwrap_or("").split_whitespace() {
        match CacheImport::parse(s) {
            Ok(mut i) => {
                if let ImportSource::Local(d) = &mut i.source {
                    *d = rel(d);
                }
                imports.push(i);
            }
            Err(e) => err("CACHE_FROM", e.to_string()),
        }
    }
    let mut exports = Vec::new();
    for s in to.unwrap_or("").split_whitespace() {
        match CacheExport::parse(s) {
            Ok(mut e) => {
                if let ExportTarget::Local(d) = &mut e.target {
                    *d = rel(d);
                }
                exports.push(e);
            }
            Err(e) => err("CACHE_TO", e.to_string()),
        }
    }
    (imports, exports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_specs_and_relative_dirs() {
        let mut errors = Vec::new();
        let (f, t) = parse(
            Some("type=registry,ref=r/c:branch\ntype=registry,ref=r/c:main type=local,src=c"),
            Some("type=registry,ref=r/c:branch,mode=max"),
            Path::new("/w"),
            &mut |k, m| errors.push(format!("{k}: {m}")),
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(f.len(), 3);
        assert_eq!(f[2].source, ImportSource::Local("/w/c".into()));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn errors_name_the_param() {
        let mut errors = Vec::new();
        parse(
            Some("type=nope"),
            Some("type=registry"),
            Path::new("/w"),
            &mut |k, m| errors.push(format!("{k}: {m}")),
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].starts_with("CACHE_FROM: --cache-from"),
            "{errors:?}"
        );
        assert!(errors[1].contains("needs ref="), "{errors:?}");
    }
}
