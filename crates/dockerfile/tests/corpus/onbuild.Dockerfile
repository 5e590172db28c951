FROM alpine
ONBUILD ADD . /app/src
ONBUILD RUN --mount=type=cache,target=/c make -C /app/src
onbuild env A=1
