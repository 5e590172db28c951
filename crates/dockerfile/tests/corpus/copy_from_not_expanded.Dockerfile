FROM alpine
ARG STAGE=build
COPY --from=$STAGE /a /b
