FROM alpine
ADD <<EOF a.txt /dest/
inline
EOF
