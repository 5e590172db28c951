//! Image references, parsed and normalised as Docker does.
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path-component { "/" path-component }
//! domain     := host [ ":" port ]            (first component with "." or ":", or "localhost")
//! path-comp  := [a-z0-9]+ { ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ }
//! tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! ```
//!
//! Normalisation (as `docker pull` does): no domain means `docker.io`; a single
//! component on Docker Hub gets `library/`; `index.docker.io` is `docker.io`; no tag
//! and no digest means `:latest`. `repo:tag@sha256:…` keeps both, and the digest wins.

use std::fmt;
use std::str::FromStr;

use hoist_image::Digest;

use crate::Error;

/// The canonical name of Docker Hub.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The key Docker uses for Docker Hub in `config.json`.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";
/// The tag used when a reference names none.
pub const DEFAULT_TAG: &str = "latest";

const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A fully normalised image reference: `registry/repository[:tag][@digest]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parse and normalise a reference (`alpine`, `localhost:5000/a/b:1@sha256:…`).
    pub fn parse(input: &str) -> Result<Reference, Error> {
        let err = |reason: &str| Error::InvalidReference {
            input: input.chars().take(256).collect(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(err("empty reference"));
        }
        if input.len() > 4096 {
            return Err(err("reference too long"));
        }
        if is_hex64(input) {
            return Err(err(
                "a 64-character hexadecimal string is an image ID, not a reference",
            ));
        }
        // Digest.
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                let digest =
                    Digest::parse(d).map_err(|e| err(&format!("bad digest: {}", e.reason)))?;
                (r, Some(digest))
            }
            None => (input, None),
        };
        // Tag: a ':' after the last '/'.
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(i) if last_slash.is_none_or(|s| i > s) => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            validate_tag(t).map_err(|r| err(&r))?;
        }
        if name.is_empty() {
            return Err(err("missing repository name"));
        }
        // Domain split, as Docker's splitDockerDomain.
        let (mut registry, mut repository) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.to_lowercase() != first =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        validate_domain(&registry).map_err(|r| err(&r))?;
        if registry == "index.docker.io" {
            registry = DOCKER_HUB.to_string();
        }
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        if repository.to_lowercase() != repository {
            return Err(err("repository name must be lowercase"));
        }
        validate_path(&repository).map_err(|r| err(&r))?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(err("repository name must not be more than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Build a reference from parts (validated).
    pub fn new(registry: &str, repository: &str, tag: Option<&str>) -> Result<Reference, Error> {
        let mut s = format!("{registry}/{repository}");
        if let Some(t) = tag {
            s.push(':');
            s.push_str(t);
        }
        Reference::parse(&s)
    }

    /// The registry (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host that serves the registry API (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The repository path inside the registry (`library/alpine`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (always present unless the reference was digest-only).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// Whether this names an image on Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB
    }

    /// The same repository with another tag (the digest is dropped).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, Error> {
        validate_tag(tag).map_err(|reason| Error::InvalidReference {
            input: tag.to_string(),
            reason,
        })?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to a digest (the tag is dropped).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// What to ask the registry for: the digest if there is one, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form Docker prints (`alpine:latest`, `user/app:1`).
    pub fn familiar(&self) -> String {
        let mut s = if self.is_docker_hub() {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn validate_tag(t: &str) -> Result<(), String> {
    if t.is_empty() {
        return Err("empty tag".into());
    }
    if t.len() > MAX_TAG_LEN {
        return Err(format!("tag longer than {MAX_TAG_LEN} characters"));
    }
    let mut bytes = t.bytes();
    let first = bytes.next().unwrap_or(b'-');
    if !(first.is_ascii_alphanumeric() || first == b'_') {
        return Err(format!(
            "invalid tag {t:?}: must start with a letter, digit or '_'"
        ));
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-') {
        return Err(format!(
            "invalid tag {t:?}: only letters, digits, '_', '.' and '-' are allowed"
        ));
    }
    Ok(())
}

fn validate_domain(d: &str) -> Result<(), String> {
    let bad = || format!("invalid registry host {d:?}");
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        // IPv6 literal.
        let (addr, after) = rest.split_once(']').ok_or_else(bad)?;
        if addr.is_empty()
            || !addr
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(bad());
        }
        match after {
            "" => return Ok(()),
            p => (None, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 5 {
            return Err(format!("invalid port in registry {d:?}"));
        }
    }
    if let Some(h) = host {
        if h.is_empty() {
            return Err(bad());
        }
        for comp in h.split('.') {
            let b = comp.as_bytes();
            let ok = !b.is_empty()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-';
            if !ok {
                return Err(bad());
            }
        }
    }
    Ok(())
}

fn validate_path(p: &str) -> Result<(), String> {
    for comp in p.split('/') {
        if !valid_component(comp) {
            return Err(format!(
                "invalid repository path component {comp:?}: lowercase letters and digits, separated by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__", or "-"+.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("alpine", "docker.io/library/alpine:latest"),
            ("alpine:3.19", "docker.io/library/alpine:3.19"),
            ("user/app", "docker.io/user/app:latest"),
            (
                "index.docker.io/library/busybox:1",
                "docker.io/library/busybox:1",
            ),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/a/b/c:v1", "localhost:5000/a/b/c:v1"),
            ("127.0.0.1:5000/app:1.0-rc_1", "127.0.0.1:5000/app:1.0-rc_1"),
            ("ghcr.io/o/r", "ghcr.io/o/r:latest"),
            ("[::1]:5000/app", "[::1]:5000/app:latest"),
            ("Registry/app", "Registry/app:latest"),
            ("a__b/c-d--e.f_g", "docker.io/a__b/c-d--e.f_g:latest"),
        ];
        for (input, want) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), want, "{input}");
            assert_eq!(Reference::parse(want).unwrap(), r, "round trip of {want}");
        }
        let r = Reference::parse("localhost:5000/app").unwrap();
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.repository(), "app");
        assert_eq!(r.tag(), Some("latest"));
        assert!(!r.is_docker_hub());
        assert_eq!(
            Reference::parse("alpine").unwrap().api_host(),
            DOCKER_HUB_API
        );
        assert_eq!(Reference::parse("alpine:3").unwrap().familiar(), "alpine:3");
    }

    #[test]
    fn digests() {
        let r = Reference::parse(&format!("alpine@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().to_string(), D);
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/alpine@{D}"));
        let r = Reference::parse(&format!("localhost:5000/x:1@{D}")).unwrap();
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.to_string(), format!("localhost:5000/x:1@{D}"));
        let t = r.with_tag("2").unwrap();
        assert_eq!(t.to_string(), "localhost:5000/x:2");
        assert_eq!(t.with_digest(r.digest().unwrap().clone()).tag(), None);
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "",
            "Alpine",
            "alpine:",
            "alpine:-x",
            "alpine:a/b",
            "UPPER/lower/Case",
            "a//b",
            "/a",
            "a/",
            "a..b",
            "a-",
            "-a",
            "alpine@sha256:abc",
            "alpine@md5:d41d8cd98f00b204e9800998ecf8427e",
            "host:port/app",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "a b",
            "localhost:5000/App",
            &format!("x:{}", "t".repeat(129)),
            &format!("{}/x", "a".repeat(300)),
        ] {
            let e = Reference::parse(bad);
            assert!(e.is_err(), "{bad:?} accepted as {:?}", e.unwrap());
            let msg = e.unwrap_err().to_string();
            assert!(msg.contains("invalid reference"), "{msg}");
        }
    }
}
