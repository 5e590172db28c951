//! Parses a generated 10,000-line Dockerfile (`cargo bench -p hoist-dockerfile`).

use criterion::{black_box, criterion_group, criterion_main, Criterion};

/// A realistic mix: stages, RUN with continuations and mounts, ENV/LABEL/ARG, COPY with
/// flags, heredocs, JSON forms; exactly `lines` lines.
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
    let mut count = 0;
    let mut n = 0;
    'outer: loop {
        for b in blocks {
            let text = b.replace("{n}", &n.to_string());
            for line in text.split_inclusive('\n') {
                if count == lines {
                    break 'outer;
                }
                out.push_str(line);
                count += 1;
            }
        }
        n += 1;
    }
    // never end inside a continuation or heredoc
    out.push_str("\nEOF\nEOT\nUSER app\n");
    out
}

fn bench(c: &mut Criterion) {
    let text = generate(10_000);
    assert!(hoist_dockerfile::parse(&text, "bench").is_ok());
    c.bench_function("parse 10k lines", |b| {
        b.iter(|| hoist_dockerfile::parse(black_box(&text), "bench").unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
