//! Setting fields of the image config (`ENV`, `ENTRYPOINT`, `LABEL`, …).

use std::collections::BTreeMap;

use crate::{ContainerConfig, ImageConfig};

use super::Image;

impl Image {
    /// Change the whole image config with `f` (for fields without a setter).
    /// `rootfs.diff_ids` is rebuilt from the layers when written, whatever `f` does.
    pub fn with_config(mut self, f: impl FnOnce(&mut ImageConfig)) -> Image {
        f(&mut self.config);
        self
    }

    /// Change the execution parameters (`config` in the config JSON) with `f`.
    pub fn with_container_config(mut self, f: impl FnOnce(&mut ContainerConfig)) -> Image {
        f(self.config.config.get_or_insert_with(Default::default));
        self
    }

    /// Set `KEY=VALUE` in the environment, replacing an earlier value of `KEY`.
    pub fn with_env(self, key: &str, value: &str) -> Image {
        self.with_container_config(|c| {
            let env = c.env.get_or_insert_with(Vec::new);
            let item = format!("{key}={value}");
            match env
                .iter_mut()
                .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
            {
                Some(e) => *e = item,
                None => env.push(item),
            }
        })
    }

    /// Set the entrypoint (exec form). Like `ENTRYPOINT` in a Dockerfile, this
    /// clears a `CMD` inherited from the base; set the cmd after it to keep one.
    pub fn with_entrypoint(self, argv: Vec<String>) -> Image {
        self.with_container_config(|c| {
            c.entrypoint = Some(argv);
            c.cmd = None;
        })
    }

    /// Set the default command (exec form).
    pub fn with_cmd(self, argv: Vec<String>) -> Image {
        self.with_container_config(|c| c.cmd = Some(argv))
    }

    /// Set the working directory.
    pub fn with_workdir(self, dir: impl Into<String>) -> Image {
        self.with_container_config(|c| c.working_dir = Some(dir.into()))
    }

    /// Set the user (`NAME`, `UID`, `UID:GID`).
    pub fn with_user(self, user: impl Into<String>) -> Image {
        self.with_container_config(|c| c.user = Some(user.into()))
    }

    /// Set a label (replacing one of the same key).
    pub fn with_label(self, key: impl Into<String>, value: impl Into<String>) -> Image {
        let (k, v) = (key.into(), value.into());
        self.with_container_config(|c| {
            c.labels.get_or_insert_with(BTreeMap::new).insert(k, v);
        })
    }

    /// Set every label of `labels` (each replacing one of the same key).
    pub fn with_labels(self, labels: &BTreeMap<String, String>) -> Image {
        labels
            .iter()
            .fold(self, |img, (k, v)| img.with_label(k.clone(), v.clone()))
    }

    /// Set the labels of `labels` that the image does not have yet (provenance
    /// defaults that an explicit `LABEL` or `--label` overrides).
    pub fn with_default_labels(self, labels: &BTreeMap<String, String>) -> Image {
        if labels.is_empty() {
            return self;
        }
        self.with_container_config(|c| {
            let l = c.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in labels {
                l.entry(k.clone()).or_insert_with(|| v.clone());
            }
        })
    }

    /// Expose a port: `80`, `80/tcp`, `53/udp` (`/tcp` is added when no protocol is given).
    pub fn with_exposed_port(self, port: &str) -> Image {
        let p = if port.contains('/') {
            port.to_string()
        } else {
            format!("{port}/tcp")
        };
        self.with_container_config(|c| {
            c.exposed_ports
                .get_or_insert_with(BTreeMap::new)
                .insert(p, serde_json::json!({}));
        })
    }

    /// Declare a volume.
    pub fn with_volume(self, path: impl Into<String>) -> Image {
        let p = path.into();
        self.with_container_config(|c| {
            c.volumes
                .get_or_insert_with(BTreeMap::new)
                .insert(p, serde_json::json!({}));
        })
    }

    /// Set the stop signal (`SIGTERM`, `9`).
    pub fn with_stop_signal(self, signal: impl Into<String>) -> Image {
        self.with_container_config(|c| c.stop_signal = Some(signal.into()))
    }

    /// Set a manifest annotation (written with OCI media types only: Docker
    /// manifests have none).
    pub fn with_annotation(mut self, key: impl Into<String>, value: impl Into<String>) -> Image {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// Set every manifest annotation of `annotations`.
    pub fn with_annotations(mut self, annotations: &BTreeMap<String, String>) -> Image {
        self.annotations.extend(annotations.clone());
        self
    }
}
