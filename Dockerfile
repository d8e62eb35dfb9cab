# Wanderer Console, headless (--no-ui), for Docker Compose (compose.yaml) or any container runtime.
#
#   docker build -t wanderer-console .
#   docker run --env-file .env -v wanderer-data:/var/lib/wanderer-console -p 127.0.0.1:8787:8787 \
#       wanderer-console
#
# Stage 1 builds a virtual environment with the console and its dependencies; stage 2 copies only
# that environment onto a clean image and runs it as an unprivileged user. See
# docs/operations/deployment.md, "Docker Compose".

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/wanderer-console
COPY pyproject.toml README.md ./
COPY wanderer_console ./wanderer_console
RUN /opt/wanderer-console/bin/pip install --no-cache-dir .

FROM ${PYTHON_IMAGE}
# The data directory is created here, owned by the service user: a named volume mounted on it
# starts with this ownership and mode, so the engine can write its database and control socket.
RUN groupadd --system --gid 10001 wanderer \
    && useradd --system --uid 10001 --gid wanderer --no-create-home \
        --home-dir /var/lib/wanderer-console --shell /usr/sbin/nologin wanderer \
    && install -d -o wanderer -g wanderer -m 0700 /var/lib/wanderer-console
COPY --from=build /opt/wanderer-console /opt/wanderer-console
# The HTTP surface (/health, /ready, /metrics) is off by default and on loopback; in a container
# it serves the health check and the published port, so it is on and bound to every interface
# (compose.yaml publishes it on the host's 127.0.0.1 only).
ENV PATH=/opt/wanderer-console/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    WANDERER_CONSOLE_CONSOLE__DATA_DIR=/var/lib/wanderer-console \
    WANDERER_CONSOLE_SERVER__ENABLED=true \
    WANDERER_CONSOLE_SERVER__HOST=0.0.0.0 \
    WANDERER_CONSOLE_SERVER__PORT=8787
# Numeric, so that Kubernetes runAsNonRoot and the host can tell it is not root.
USER 10001:10001
WORKDIR /var/lib/wanderer-console
EXPOSE 8787
# Healthy = /ready answers 200 (store and every source up); 503 or no answer = unhealthy. The slim
# image has no curl: the image's own Python asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ.get('WANDERER_CONSOLE_SERVER__PORT', '8787'), timeout=4)"]
# SIGTERM (docker stop) stops the engine gracefully: sources first, in-flight Discord requests
# get console.stop_grace_seconds; keep the container's stop timeout above it.
STOPSIGNAL SIGTERM
ENTRYPOINT ["wanderer-console"]
CMD ["--no-ui"]
