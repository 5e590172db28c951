FROM alpine
RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1000,gid=1000 \
    --mount=type=bind,source=.,target=/src,rw \
    --mount=type=tmpfs,target=/tmp,size=64m \
    --mount=type=secret,id=token,target=/run/secrets/token,required=true,mode=0400 \
    --mount=type=ssh,id=default,required \
    pip install -r /src/requirements.txt
