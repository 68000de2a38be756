# doq's container image (docs/kubernetes.md). Two stages: the first builds every wheel the node
# needs (doq itself and its dependencies, with the Kubernetes extra); the second installs them
# into a virtual environment and carries no compiler, no pip cache and no source tree.
#
# tests/kubernetes/test_dockerfile.py lints this file with hadolint and runs its pip commands,
# exactly as written here, in a fresh virtual environment. Keep the install commands in RUN lines
# that use ${WHEELS} and ${VENV}, so the test can point them at temporary directories.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# A compiler only here, for a platform where some dependency ships no wheel.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WHEELS=/wheels
WORKDIR /src
COPY pyproject.toml README.md ./
COPY raft_zmq ./raft_zmq
COPY doq ./doq
COPY simulations ./simulations
RUN python -m pip wheel --wheel-dir "${WHEELS}" ".[kubernetes]"

FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WHEELS=/wheels \
    VENV=/opt/doq
# The wheels are mounted from the build stage for this one step, so no layer keeps them.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv "${VENV}" \
    && "${VENV}/bin/python" -m pip install --no-index --find-links "${WHEELS}" "doq[kubernetes]"
RUN groupadd --system --gid 10001 doq \
    && useradd --system --uid 10001 --gid doq --home-dir /data --shell /usr/sbin/nologin doq \
    && mkdir -p /data \
    && chown doq:doq /data
ENV PATH=/opt/doq/bin:${PATH} \
    DOQ_STORAGE_DATA_DIR=/data \
    DOQ_HTTP_PORT=8000 \
    DOQ_GRPC_ADDRESS=0.0.0.0:10000 \
    DOQ_LOGGING_MODE=json
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
# 8000: the HTTP API; 9000: Raft between nodes; 10000: the Go server's gRPC service (docs/grpc.md).
EXPOSE 8000 9000 10000
# Docker and Compose use this; Kubernetes ignores it and probes /livez and /readyz itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DOQ_HTTP_PORT', '8000') + '/livez', timeout=2)"]
ENTRYPOINT ["doq"]
CMD []
