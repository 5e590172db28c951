FROM alpine
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["nginx", "-g", "daemon off;"]
