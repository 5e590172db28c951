FROM alpine
ARG NAME=world
COPY <<EOF /etc/greeting
hello ${NAME}
EOF
COPY --chmod=0755 <<-EOF /usr/bin/run.sh
	#!/bin/sh
	echo "$NAME"
	EOF
