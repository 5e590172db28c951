FROM alpine
RUN python3 <<EOF > /out
print(1)
EOF
