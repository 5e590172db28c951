FROM alpine
RUN cat 3<<EOF
three
EOF
