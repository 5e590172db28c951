//! Registry flags shared by every command that talks to registries.

use std::path::PathBuf;

use clap::Args;
use hoist_registry::{CaCert, ClientConfig};

/// How to reach registries.
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryArgs {
    /// Extra CA certificate (PEM) to trust for every registry (repeatable).
    #[arg(long = "ca-cert", value_name = "FILE")]
    pub ca_certs: Vec<PathBuf>,
    /// Registry host to reach over plain HTTP or unverified TLS (repeatable).
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure: Vec<String>,
    /// Mirror to try first: URL for docker.io, REGISTRY=URL for any registry
    /// (repeatable; before the hosts.toml mirrors, see docs/registries.md).
    #[arg(long = "registry-mirror", value_name = "[REGISTRY=]URL")]
    pub mirrors: Vec<String>,
    /// Directory of containerd-style REGISTRY/hosts.toml files naming mirrors
    /// (repeatable; replaces the default /etc/containerd/certs.d and
    /// ~/.config/containerd/certs.d).
    #[arg(
        long = "registry-config",
        value_name = "DIR",
        env = "HOIST_REGISTRY_CONFIG"
    )]
    pub registry_config: Vec<PathBuf>,
    /// Credentials file to read (default: $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json,
    /// ~/.docker/config.json, podman's auth.json).
    #[arg(long = "authfile", env = "REGISTRY_AUTH_FILE", value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Seconds a registry may send nothing (or less than 1 KiB/s) while hoist waits
    /// for an answer or reads a manifest or blob, before the request fails with
    /// "registry HOST stopped responding" and is retried (default 30).
    #[arg(
        long = "registry-timeout",
        env = "HOIST_REGISTRY_TIMEOUT",
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub timeout: Option<u64>,
    /// Longest Retry-After honoured, in seconds: a registry that answers 429 or 503
    /// asking for longer is retried after this long, and hoist says so (default 60).
    #[arg(
        long = "registry-max-retry-after",
        env = "HOIST_REGISTRY_MAX_RETRY_AFTER",
        value_name = "SECONDS"
    )]
    pub max_retry_after: Option<u64>,
}

impl RegistryArgs {
    /// The registry client configuration these flags describe.
    pub fn to_config(&self) -> ClientConfig {
        let mut c = ClientConfig::default();
        c.ca_certs
            .extend(self.ca_certs.iter().cloned().map(CaCert::File));
        c.insecure.extend(self.insecure.iter().cloned());
        c.mirrors.extend(self.mirrors.iter().cloned());
        if !self.registry_config.is_empty() {
            c.hosts_dirs = self.registry_config.clone();
        }
        if let Some(f) = &self.authfile {
            c.auth.files = Some(vec![f.clone()]);
        }
        if let Some(s) = self.timeout {
            c.read_timeout = std::time::Duration::from_secs(s);
        }
        if let Some(s) = self.max_retry_after {
            c.max_retry_after = std::time::Duration::from_secs(s);
        }
        c
    }
}
