//! Parses a generated 10,000-line Dockerfile (`cargo bench -p hoist-dockerfile`).
#![allow(missing_docs)] // criterion's macros generate undocumented items

use criterion::{black_box, criterion_group, criterion_main, Criterion};

/// A realistic mix: stages, RUN with continuations and mounts, ENV/LABEL/ARG, COPY with
/// flags, heredocs, JSON forms; whole blocks until at least `lines` lines.
fn generate(lines: usize) -> String {
    let blocks = [
        "FROM --platform=$BUILDPLATFORM golang:1.22 AS build{n}\n",
        "ARG VERSION{n}=1.{n}.0\n",
        "ENV GOPATH=/go PATH=/go/bin:$PATH CGO_ENABLED=0\n",
        "WORKDIR /src/app{n}\n",
        "COPY --link --chown=1000:1000 go.mod go.sum ./\n",
        "RUN --mount=type=cache,target=/go/pkg/mod \\\n    --mount=type=cache,target=/root/.cache/go-build \\\n    go mod download && \\\n    go build -ldflags \"-X main.version=${VERSION{n}}\" -o /out/app ./cmd/app\n",
        "LABEL org.opencontainers.image.title=\"app {n}\" org.opencontainers.image.version=$VERSION{n}\n",
        "# a comment line\n",
        "RUN <<EOF\nset -eux\napk add --no-cache ca-certificates\nEOF\n",
        "COPY <<-EOT /etc/app.conf\n\tkey=value\n\tEOT\n",
        "EXPOSE 8080/tcp 9090\n",
        "HEALTHCHECK --interval=30s --timeout=3s CMD [\"/app\", \"health\"]\n",
        "ENTRYPOINT [\"/app\"]\n",
        "CMD [\"serve\", \"--port=8080\"]\n",
        "\n",
    ];
    let mut out = String::new();
    let mut n = 0;
    while out.lines().count() < lines {
        for b in blocks {
            out.push_str(&b.replace("{n}", &n.to_string()));
        }
        n += 1;
    }
    out
}

fn bench(c: &mut Criterion) {
    let text = generate(10_000);
    if let Err(e) = hoist_dockerfile::parse(&text, "bench") {
        panic!("generated Dockerfile does not parse: {e}");
    }
    println!(
        "benchmark input: {} lines, {} bytes",
        text.lines().count(),
        text.len()
    );
    // CPU time (not wall time, which a loaded machine inflates) per parse, from the kernel's
    // per-thread accounting.
    let cpu_ns = || -> Option<u64> {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    if let Some(start) = cpu_ns() {
        let n = 200;
        for _ in 0..n {
            black_box(hoist_dockerfile::parse(black_box(&text), "bench").unwrap());
        }
        if let Some(end) = cpu_ns() {
            println!(
                "cpu time per parse: {:.3} ms",
                (end - start) as f64 / n as f64 / 1e6
            );
        }
    }
    c.bench_function("parse 10k lines", |b| {
        b.iter(|| hoist_dockerfile::parse(black_box(&text), "bench").unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
