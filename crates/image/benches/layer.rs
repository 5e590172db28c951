//! Criterion benchmark of the layer writer: a generated tree of ~20 MB of mixed
//! files plus 10,000 small files, written as a gzip (and zstd / plain) layer.

#![allow(missing_docs)] // criterion_group! generates an undocumented function
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hoist_image::layer::{walk, Compression, LayerWriter, WalkOptions, WriteOptions};

/// A deterministic pseudo-random generator (xorshift), so every run sees the same tree.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Half incompressible bytes, half text-like lines.
fn fill(rng: &mut Rng, len: usize, text: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    if text {
        const WORDS: [&str; 8] = [
            "layer",
            "image ",
            "hoist\n",
            "oci ",
            "tar ",
            "{\"a\":1} ",
            "fn main() ",
            "digest ",
        ];
        while v.len() < len {
            v.extend_from_slice(WORDS[(rng.next() % 8) as usize].as_bytes());
        }
        v.truncate(len);
    } else {
        while v.len() < len {
            v.extend_from_slice(&rng.next().to_le_bytes());
        }
        v.truncate(len);
    }
    v
}

fn make_tree(root: &Path) -> io::Result<u64> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut total = 0;
    // ~20 MB in 40 mixed files of 64 KiB..1 MiB.
    for i in 0..40 {
        let dir = root.join(format!("big/d{}", i % 4));
        fs::create_dir_all(&dir)?;
        let len = 64 * 1024 + (rng.next() % (960 * 1024)) as usize;
        fs::write(
            dir.join(format!("f{i}.bin")),
            fill(&mut rng, len, i % 2 == 0),
        )?;
        total += len as u64;
    }
    // 10,000 small files in 100 directories.
    for d in 0..100 {
        let dir = root.join(format!("small/{d:03}"));
        fs::create_dir_all(&dir)?;
        for f in 0..100 {
            let len = (rng.next() % 2048) as usize;
            let mut file = fs::File::create(dir.join(format!("{f:03}.txt")))?;
            file.write_all(&fill(&mut rng, len, true))?;
            total += len as u64;
        }
    }
    Ok(total)
}

fn bench_writer(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bytes = make_tree(tmp.path()).expect("generate tree");
    let mut group = c.benchmark_group("layer_writer");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));
    for (name, compression, level) in [
        ("gzip", Compression::Gzip, None),
        ("gzip-level1", Compression::Gzip, Some(1)),
        ("zstd", Compression::Zstd, None),
        ("none", Compression::None, None),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let opts = WriteOptions {
                    compression,
                    level,
                    ..Default::default()
                };
                let mut w = LayerWriter::new(io::sink(), &opts).expect("writer");
                let entries =
                    walk(tmp.path(), "app", &WalkOptions::default(), &|_, _| true).expect("walk");
                w.append_all(entries).expect("append");
                w.finish().expect("finish").1
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_writer);
criterion_main!(benches);
