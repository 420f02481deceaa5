# Unrolled: the app, its API and the trained model zoo, served by uvicorn on CPU-only torch.
#
#   docker build -t unrolled .
#   docker run --rm -p 8000:8000 unrolled        # then open http://127.0.0.1:8000
#
# Every setting is an environment variable (UNROLLED_PORT, UNROLLED_WORKERS, UNROLLED_MODELS_DIR,
# UNROLLED_MAX_STEPS, UNROLLED_MAX_CONCURRENT, UNROLLED_CORS_ORIGINS, UNROLLED_LOG_LEVEL, …; see app/web/config.py).
# /metrics is on its own port, UNROLLED_METRICS_PORT (9100), not on the public one.

# Pinned by digest (the multi-platform index of python:3.11-slim), so a rebuild gets the same base, not whatever
# the tag points at that day. To move it on: `docker buildx imagetools inspect python:3.11-slim` and paste the
# digest here (or let Renovate/Dependabot propose it). Where no registry is reachable, docker-test passes its own.
ARG BASE_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

FROM ${BASE_IMAGE} AS build
# CPU-only torch from PyTorch's CPU index (plain PyPI would pull a multi-GB CUDA build). Where that index is out
# of reach, build with --build-arg TORCH_INDEX= and a folder of wheels mounted at /wheels (PIP_FIND_LINKS=/wheels).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG PIP_FIND_LINKS=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY app ./app
# The dependencies at the exact versions of requirements.lock (the file `make install` uses too); the code itself
# runs from /app, beside its templates, static files and models.
RUN /opt/venv/bin/pip install -c requirements.lock ${TORCH_INDEX:+--extra-index-url "$TORCH_INDEX"} \
        ${PIP_FIND_LINKS:+--find-links "$PIP_FIND_LINKS"} "torch==2.13.0+cpu" \
    && /opt/venv/bin/pip install -c requirements.lock . \
    && /opt/venv/bin/pip uninstall -y unrolled pip setuptools
# torch's C++ headers, its tests and test binaries: 190 MB the server never uses.
WORKDIR /opt/venv/lib/python3.11/site-packages/torch
RUN rm -rf test include && find bin -type f ! -name torch_shm_manager -delete
WORKDIR /app
# Compile the BPTT kernels once, here, so that no container pays for it at start-up.
ENV NUMBA_CACHE_DIR=/opt/numba-cache
RUN PYTHONPATH=/app /opt/venv/bin/python -c \
    "from app.engine import kernels; from app.engine.lab import jacobian; kernels.warm_up(); jacobian.warm_up()"

# The pages' modules bundled and Plotly's partial bundle (tools/bundle.mjs; `make install` does the same): Node.js
# and npm from Debian, here only, and esbuild from the npm registry at the versions of package-lock.json.
FROM ${BASE_IMAGE} AS static
# Unpinned: whatever nodejs and npm the base's Debian release carries (a pinned Debian revision disappears from the
# mirror with the next security update); this stage only runs esbuild, at the version package-lock.json pins.
# hadolint ignore=DL3008
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tools ./tools
COPY templates ./templates
COPY static ./static
RUN node tools/bundle.mjs

FROM ${BASE_IMAGE}
RUN groupadd --system --gid 10001 unrolled \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin unrolled
COPY --from=build /opt/venv /opt/venv
# root's, read-only for the server (app/engine/jit.py): compiled code it loads, and must not be able to replace
COPY --from=build /opt/numba-cache /opt/numba-cache
COPY --from=build /app/app /app/app
COPY templates /app/templates
COPY --from=static /src/static /app/static
COPY tours /app/tours
COPY models /app/models
# Readable by the server's user whatever the build context's modes (safetensors writes files 0600).
RUN chmod -R a+rX,go-w /app /opt/numba-cache
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/opt/numba-cache \
    UNROLLED_MODELS_DIR=/app/models \
    UNROLLED_HOST=0.0.0.0 \
    UNROLLED_PORT=8000 \
    UNROLLED_METRICS_PORT=9100 \
    UNROLLED_WORKERS=1 \
    UNROLLED_LOG_JSON=true \
    UNROLLED_LOG_LEVEL=info
WORKDIR /app
USER 10001:10001
# 8000: the app and its API, public; 9100: /metrics, for Prometheus only
EXPOSE 8000 9100
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['UNROLLED_PORT']}/healthz\", timeout=2)"]
STOPSIGNAL SIGTERM
CMD ["python3", "-m", "app.cli", "serve"]
