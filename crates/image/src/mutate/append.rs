//! Appending layers (with their history) and history entries.

use crate::{History, Result};

use super::{Image, Layer};

/// A layer to append together with the history entry that describes it (ggcr's
/// `mutate.Addendum`).
#[derive(Debug, Clone)]
pub struct Addendum {
    /// The layer.
    pub layer: Layer,
    /// Its history entry (`empty_layer` is cleared: this entry has a layer).
    pub history: History,
}

impl Addendum {
    /// A layer with a history entry that says `created_by`.
    pub fn new(layer: Layer, created_by: impl Into<String>) -> Addendum {
        Addendum {
            layer,
            history: History {
                created_by: Some(created_by.into()),
                ..Default::default()
            },
        }
    }
}

impl Image {
    /// Append layers on top, each with its history entry. A history entry without a
    /// `created` time gets the config's `created` (if set).
    pub fn append(mut self, adds: impl IntoIterator<Item = Addendum>) -> Image {
        for a in adds {
            let mut h = a.history;
            h.empty_layer = None;
            if h.created.is_none() {
                h.created = self.config.created.clone();
            }
            self.config.rootfs.diff_ids.push(a.layer.diff_id().clone());
            self.layers.push(a.layer);
            self.config.history.push(h);
        }
        self
    }

    /// Append one layer with a history entry saying `created_by`.
    pub fn append_layer(self, layer: Layer, created_by: impl Into<String>) -> Image {
        self.append([Addendum::new(layer, created_by)])
    }

    /// Record a step that made no layer (`ENV`, `CMD`, …): a history entry with
    /// `empty_layer: true`.
    pub fn append_history(mut self, mut history: History) -> Image {
        history.empty_layer = Some(true);
        if history.created.is_none() {
            history.created = self.config.created.clone();
        }
        self.config.history.push(history);
        self
    }

    /// Replace the whole history. Fails when the entries that are not
    /// `empty_layer` do not number the layers (tools pair them up by position),
    /// except for an empty history, which is allowed.
    pub fn with_history(mut self, history: Vec<History>) -> Result<Image> {
        let with_layer = history
            .iter()
            .filter(|h| h.empty_layer != Some(true))
            .count();
        if !history.is_empty() && with_layer != self.layers.len() {
            return Err(crate::Error::Format(format!(
                "the history has {with_layer} entries with a layer but the image {} layers",
                self.layers.len()
            )));
        }
        self.config.history = history;
        Ok(self)
    }
}
