FROM busybox
RUN <<EOF
set -e
echo $HOME
EOF
COPY <<-'END' /etc/motd
	hello ${USER}
	END
RUN <<A cat /dev/stdin && <<B cat
a
A
b
B
