# syntax=docker/dockerfile:1
# The demo service, `python -m backend`, as an image (docs/container.md).
#
#   docker build -t aiohttp-realtime-demo .
#   docker run --rm -p 127.0.0.1:8080:8080 \
#     -v "$PWD/tokens.json:/run/secrets/tokens.json:ro" aiohttp-realtime-demo
#
# Two stages: `build` turns the library (backend/realtime/, aiohttp-realtime) and the
# demo (aiohttp-realtime-demo) into wheels, with every dependency at the version
# requirements.lock pins; `runtime` installs only those wheels, offline, into a slim
# Python and runs them as an unprivileged user. No compiler, source tree, test tool
# or npm package reaches the runtime image.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements.lock ./
# The build tools at their locked versions; the wheels below build without isolation
# so that they use exactly these.
RUN pip install --no-cache-dir -c requirements.lock pip setuptools
COPY pyproject.toml README.md LICENSE ./
COPY backend/ backend/
# The library with its redis extra (--broker redis://...), the demo (asyncpg for
# --database postgresql://... is one of its own dependencies) and every dependency.
RUN pip wheel --no-cache-dir --no-build-isolation -c requirements.lock --wheel-dir /wheels \
        "./backend/realtime[redis]" .

FROM python:3.11-slim AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The service's user: no login shell, no home, no write access to the installed code.
# A numeric USER lets Kubernetes' runAsNonRoot check it.
RUN groupadd --system --gid 10001 realtime \
    && useradd --system --uid 10001 --gid realtime --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin realtime
# Exactly the wheels the build stage made (the locked closure of the two), offline;
# pip's resolver still checks that nothing is missing. They are mounted from the build
# stage for this one step, so they are not a layer of the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels /wheels/*.whl \
    && pip check
USER 10001:10001
EXPOSE 8080
# Liveness: the process serves HTTP. /healthz answers on any Host and without a token;
# slim has no curl, so Python's urllib asks (non-2xx or no answer: exit 1).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
# Every interface, and authentication on: python -m backend refuses a non-loopback
# --host without a tokens file (or --insecure-no-auth). Mount the tokens file at
# /run/secrets/tokens.json (a secret); without it the container exits with that error.
# --broker/--database (or BACKEND_BROKER/BACKEND_DATABASE) share state between
# replicas; compose.yaml adds them. `docker stop` sends SIGTERM: the service stops
# accepting and closes its clients with 1012 (they reconnect) within 5 s.
CMD ["python", "-m", "backend", "--host", "0.0.0.0", "--port", "8080", "--tokens-file", "/run/secrets/tokens.json"]
