//! The `--output` attributes that shape the image itself (compression, media types,
//! annotations) for the commands that do not build: `hoist assemble` honours them for
//! its one image, `hoist pull` refuses them (it writes the image as served). A parsed
//! attribute is never ignored.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use hoist_engine::output::{Compression, OutputSpec};

/// The image-shaping attributes of every output of one command, merged.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImageAttrs {
    /// `compression=`.
    pub compression: Option<Compression>,
    /// `compression-level=`.
    pub level: Option<i32>,
    /// `oci-mediatypes=`.
    pub oci_mediatypes: Option<bool>,
    /// `annotation.K=V` (each manifest).
    pub annotations: BTreeMap<String, String>,
    /// `annotation-index.K=V`.
    pub index_annotations: BTreeMap<String, String>,
    /// `annotation-manifest-descriptor.K=V`.
    pub descriptor_annotations: BTreeMap<String, String>,
}

/// The names of the image-shaping attributes `o` sets, as written on the command line.
pub fn shaping_attribute_names(o: &OutputSpec) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(c) = o.compression {
        v.push(format!("compression={}", compression_name(c)));
    }
    if let Some(l) = o.compression_level {
        v.push(format!("compression-level={l}"));
    }
    if o.force_compression {
        v.push("force-compression=true".into());
    }
    if let Some(b) = o.oci_mediatypes {
        v.push(format!("oci-mediatypes={b}"));
    }
    v.extend(o.annotations.keys().map(|k| format!("annotation.{k}")));
    v.extend(
        o.index_annotations
            .keys()
            .map(|k| format!("annotation-index.{k}")),
    );
    v.extend(
        o.descriptor_annotations
            .keys()
            .map(|k| format!("annotation-manifest-descriptor.{k}")),
    );
    v
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
        Compression::None => "uncompressed",
    }
}

/// `hoist pull` writes the image exactly as the registry serves it (the digest never
/// changes): an output attribute that would re-encode or re-annotate it is refused.
pub fn refuse_for_pull(outputs: &[OutputSpec]) -> Result<()> {
    for o in outputs {
        let names = shaping_attribute_names(o);
        if !names.is_empty() {
            bail!(
                "hoist pull --output: {} not supported: pull writes the image exactly as the \
                 registry serves it, so its digest does not change; to re-encode or annotate \
                 it, use `hoist assemble --base REF -o …` or `hoist build` (FROM REF)",
                if names.len() == 1 {
                    format!("{} is", names[0])
                } else {
                    format!("{} are", names.join(", "))
                }
            );
        }
    }
    Ok(())
}

fn merge_one<T: PartialEq + Copy + std::fmt::Debug>(
    what: &str,
    slot: &mut Option<T>,
    v: Option<T>,
) -> Result<()> {
    match (*slot, v) {
        (Some(a), Some(b)) if a != b => bail!(
            "the outputs ask for different {what} ({a:?} and {b:?}): hoist assemble writes one \
             image for all of them; give every output the same {what}, or run it once per output"
        ),
        (None, Some(b)) => *slot = Some(b),
        _ => {}
    }
    Ok(())
}

fn merge_map(
    what: &str,
    into: &mut BTreeMap<String, String>,
    from: &BTreeMap<String, String>,
) -> Result<()> {
    for (k, v) in from {
        if let Some(old) = into.insert(k.clone(), v.clone()) {
            if &old != v {
                bail!(
                    "the outputs give {what}{k} two values ({old:?} and {v:?}): hoist assemble \
                     writes one image for all of them"
                );
            }
        }
    }
    Ok(())
}

/// The attributes of `outputs` for `hoist assemble`'s one image: the outputs must agree
/// (an output that does not set one takes the others'); `force-compression` is refused,
/// since base layers are kept as they are (that is what lets a push mount them).
pub fn for_assemble(outputs: &[OutputSpec]) -> Result<ImageAttrs> {
    let mut a = ImageAttrs::default();
    for o in outputs {
        if o.force_compression {
            bail!(
                "hoist assemble --output: force-compression=true is not supported: the base's \
                 layers are kept byte for byte (a push mounts them instead of uploading); only \
                 the added layers take compression="
            );
        }
        merge_one("compression", &mut a.compression, o.compression)?;
        merge_one("compression-level", &mut a.level, o.compression_level)?;
        merge_one("oci-mediatypes", &mut a.oci_mediatypes, o.oci_mediatypes)?;
        merge_map("annotation.", &mut a.annotations, &o.annotations)?;
        merge_map(
            "annotation-index.",
            &mut a.index_annotations,
            &o.index_annotations,
        )?;
        merge_map(
            "annotation-manifest-descriptor.",
            &mut a.descriptor_annotations,
            &o.descriptor_annotations,
        )?;
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(s: &[&str]) -> Vec<OutputSpec> {
        s.iter().map(|s| OutputSpec::parse(s).unwrap()).collect()
    }

    #[test]
    fn pull_refuses_every_image_shaping_attribute() {
        assert!(refuse_for_pull(&specs(&["type=oci,dest=x", "type=docker,dest=y.tar"])).is_ok());
        for (attr, named) in [
            ("compression=zstd", "compression=zstd"),
            ("compression-level=9", "compression-level=9"),
            ("force-compression=true", "force-compression=true"),
            ("oci-mediatypes=false", "oci-mediatypes=false"),
            ("annotation.a=b", "annotation.a"),
            ("annotation-index.a=b", "annotation-index.a"),
            (
                "annotation-manifest-descriptor.a=b",
                "annotation-manifest-descriptor.a",
            ),
        ] {
            let e = refuse_for_pull(&specs(&[&format!("type=oci,dest=x,{attr}")]))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(named) && e.contains("not supported"),
                "{attr}: {e}"
            );
        }
    }

    #[test]
    fn assemble_merges_agreeing_outputs_and_refuses_the_rest() {
        let a = for_assemble(&specs(&[
            "type=oci,dest=x,compression=zstd,compression-level=5,annotation.k=v",
            "type=image,name=r/a,push=true,annotation.k=v,oci-mediatypes=false",
        ]))
        .unwrap();
        assert_eq!(a.compression, Some(Compression::Zstd));
        assert_eq!(a.level, Some(5));
        assert_eq!(a.oci_mediatypes, Some(false));
        assert_eq!(a.annotations["k"], "v");
        for bad in [
            &[
                "type=oci,dest=x,compression=zstd",
                "type=oci,dest=y,compression=gzip",
            ][..],
            &[
                "type=oci,dest=x,annotation.k=1",
                "type=oci,dest=y,annotation.k=2",
            ],
            &["type=oci,dest=x,force-compression=true"],
        ] {
            assert!(for_assemble(&specs(bad)).is_err(), "{bad:?}");
        }
    }
}
