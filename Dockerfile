# Production image of the Lead Ignite data service: uvicorn serving service.main:app, talking to
# the MongoDB named by MONGODB_URL (docker-compose.yml, docs/deployment.md).
#
# Reproducible: every package comes from a hashed lock (deploy/requirements.lock for the
# runtime, deploy/build-requirements.lock for setuptools, which builds the service's own wheel
# without fetching anything unpinned), binary wheels only, and nothing from the test extras.
# The base image is pinned by Python minor version and Debian release; pin it by digest too
# (python:3.11-slim-trixie@sha256:...) where builds must be bit-for-bit repeatable.
ARG PYTHON_IMAGE=python:3.11-slim-trixie

# --- build: a virtualenv with the locked dependencies and the service ----------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src

# The venv has no pip of its own (nothing in the runtime image can install packages); the
# build stage's pip installs into it with --python.
RUN python -m venv --without-pip /opt/venv

# Dependencies first, so editing the code does not invalidate this layer. --no-deps with
# --require-hashes: the lock is the complete, closed list; anything missing from it fails
# the build instead of being resolved silently. --only-binary: slim has no compiler, and
# every locked package ships manylinux wheels for amd64 and arm64.
COPY deploy/requirements.lock deploy/build-requirements.lock ./deploy/
RUN pip --python /opt/venv/bin/python install --require-hashes --no-deps --only-binary=:all: \
        -r deploy/requirements.lock \
 && pip install --require-hashes --no-deps --only-binary=:all: -r deploy/build-requirements.lock

# The service itself (the packages pyproject.toml lists; README.md is its `readme`).
COPY pyproject.toml README.md ./
COPY service ./service
COPY documents ./documents
COPY routes ./routes
COPY schemas ./schemas
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/wheels . \
 && pip --python /opt/venv/bin/python install --no-deps --no-index /tmp/wheels/*.whl \
 && pip --python /opt/venv/bin/python check

# --- runtime: the venv, a non-root user, nothing else ----------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# FORWARDED_ALLOW_IPS: uvicorn honours X-Forwarded-For/-Proto only from these addresses. Its
# default, 127.0.0.1, is never the proxy inside a container, so forwarded headers are ignored
# until the deployment names the reverse proxy's address as the container sees it, and gives
# the service's TRUSTED_PROXIES the same value (docs/deployment.md, "Behind a reverse proxy";
# docker-compose.yml does both).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    APP_ENV=production \
    FORWARDED_ALLOW_IPS=127.0.0.1

RUN groupadd --gid 10001 app \
 && useradd --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 deploy/docker-entrypoint.sh /usr/local/bin/lead-ignite-entrypoint

# Owned by root and read-only for the service: it writes nothing to disk (the embedded
# database is for development only; production requires MONGODB_URL).
WORKDIR /app
USER 10001:10001
EXPOSE 8000

# /ready answers 200 only when the database answers a ping: "healthy" means able to serve.
# (An orchestrator with separate probes should use /health for liveness, /ready for readiness.)
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4).status == 200 else 1)"]

# The entrypoint turns *_FILE variables (Docker secrets) into the variables the service reads.
ENTRYPOINT ["/usr/local/bin/lead-ignite-entrypoint"]
# --proxy-headers (uvicorn's default, spelled out) is only as safe as FORWARDED_ALLOW_IPS above.
# Workers: WEB_CONCURRENCY (uvicorn reads it), 1 by default; see docs/deployment.md on scaling.
CMD ["python", "-m", "service.serve", "--host", "0.0.0.0", "--port", "8000", \
     "--proxy-headers", "--no-server-header", "--timeout-graceful-shutdown", "20"]
