FROM alpine AS build
FROM alpine
COPY --from=build --chown=app:app --chmod=u+rwx,g=rx --link /out /app
COPY --from=0 /etc/passwd /tmp/
COPY --parents ./a/b/*.txt /dst/
COPY --exclude=**/*.tmp --exclude=.git src/ /src/
COPY --from=nginx:latest /etc/nginx/nginx.conf /nginx.conf
