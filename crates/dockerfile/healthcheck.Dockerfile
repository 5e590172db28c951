FROM alpine
HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --start-interval=2s --retries=3 CMD curl -f http://localhost/ || exit 1
HEALTHCHECK CMD ["/bin/check", "--fast"]
HEALTHCHECK NONE
HEALTHCHECK --interval=1m30s cmd true
