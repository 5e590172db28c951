//! The state of a stage while its steps run: config, layers, file-system view, key.

use std::path::PathBuf;

use hoist_image::{ContainerConfig, ImageConfig, Platform, RootFs};

use crate::fsview::FsView;
use crate::key::Key;
use crate::layers::LayerRef;

/// The `PATH` BuildKit sets for images without one (the Dockerfile crate's constant).
pub use hoist_dockerfile::DEFAULT_PATH_ENV;

/// The state of a stage while and after it is built.
#[derive(Debug, Clone)]
pub(crate) struct StageState {
    pub config: ImageConfig,
    pub layers: Vec<LayerRef>,
    pub view: FsView,
    /// ARGs declared in the stage, for the unused-build-arg report.
    pub declared_args: Vec<String>,
    /// Whether CMD was set in this Dockerfile stage (ENTRYPOINT keeps it then).
    pub cmd_set: bool,
    /// Where the stage's filesystem is unpacked, once someone needed it.
    pub rootfs: Option<PathBuf>,
    /// The step key of everything that made this state (see [`crate::key`]).
    pub key: Key,
}

impl StageState {
    pub fn scratch(platform: &Platform) -> StageState {
        StageState {
            config: ImageConfig {
                architecture: platform.architecture.clone(),
                os: platform.os.clone(),
                variant: platform.variant.clone(),
                config: Some(ContainerConfig {
                    env: Some(vec![DEFAULT_PATH_ENV.to_string()]),
                    working_dir: Some(crate::compat::SCRATCH_WORKDIR.to_string()),
                    ..Default::default()
                }),
                rootfs: RootFs::default(),
                ..Default::default()
            },
            layers: Vec::new(),
            view: FsView::new(),
            declared_args: Vec::new(),
            cmd_set: false,
            rootfs: None,
            key: crate::key::scratch_key(&platform.to_string()),
        }
    }

    /// The state of a stage built `FROM` this one: same files and config, ONBUILD
    /// triggers consumed (the child runs them), CMD not yet set in the child.
    pub fn as_base(&self) -> StageState {
        let mut s = self.clone();
        s.cmd_set = false;
        s.declared_args.clear();
        if let Some(c) = s.config.config.as_mut() {
            c.on_build = None;
        }
        s
    }

    pub fn cfg(&mut self) -> &mut ContainerConfig {
        self.config.config.get_or_insert_with(Default::default)
    }

    pub fn workdir(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }

    pub fn shell(&self) -> Vec<String> {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.shell.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    pub fn user(&self) -> String {
        self.config
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .unwrap_or_default()
    }
}
