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
    /// Mirror to try first for docker.io (repeatable).
    #[arg(long = "registry-mirror", value_name = "URL")]
    pub mirrors: Vec<String>,
    /// Credentials file to read (default: $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json,
    /// ~/.docker/config.json, podman's auth.json).
    #[arg(long = "authfile", env = "REGISTRY_AUTH_FILE", value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

impl RegistryArgs {
    /// The registry client configuration these flags describe.
    pub fn to_config(&self) -> ClientConfig {
        let mut c = ClientConfig::default();
        c.ca_certs
            .extend(self.ca_certs.iter().cloned().map(CaCert::File));
        c.insecure.extend(self.insecure.iter().cloned());
        c.mirrors.extend(self.mirrors.iter().cloned());
        if let Some(f) = &self.authfile {
            c.auth.files = Some(vec![f.clone()]);
        }
        c
    }
}
