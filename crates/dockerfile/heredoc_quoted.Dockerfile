FROM alpine
ENV X=1
COPY <<"EOF" /a
$X stays
EOF
COPY <<'EOF' /b
$X stays too
EOF
COPY <<E"O"F /c
partial quote $X
EOF
