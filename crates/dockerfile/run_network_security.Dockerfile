FROM alpine
RUN --network=none echo offline
RUN --network=host --security=insecure echo host
RUN --network=default --security=sandbox echo default
