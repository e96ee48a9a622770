# syntax=docker/dockerfile:1
# One image for every Baton process: `docker run IMAGE <service>` runs `python -m services.<service>`
# (ingest, router, bot, outbox, history, console); `migrate` migrates the store; `simulator` serves
# the WhatsApp Cloud API simulator, in images built with BATON_WITH_SIMULATOR=true only (the
# local stack's). See deploy/entrypoint.sh.

# Bump the patch version deliberately (and pin by digest in your registry if you can).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ONLY_BINARY=:all:
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, in their own layer: pyproject's runtime dependencies (not the dev extras),
# every version pinned by constraints.txt. Wheels only, so no compiler is needed anywhere.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep=chr(10))" > requirements.txt \
 && /opt/venv/bin/pip install -r requirements.txt -c constraints.txt
# The code runs from source (PYTHONPATH below), exactly as in the repository.
WORKDIR /app
COPY libs/ libs/
COPY services/ services/
COPY simulator/ simulator/
COPY deploy/entrypoint.sh deploy/entrypoint.sh
# The WhatsApp simulator is for local stacks only (docker-compose builds with
# BATON_WITH_SIMULATOR=true): a production image never contains it.
ARG BATON_WITH_SIMULATOR=false
RUN if [ "$BATON_WITH_SIMULATOR" != "true" ]; then rm -rf simulator; fi \
 && python -m compileall -q libs services $(test -d simulator && echo simulator) \
 && chmod 0755 deploy/entrypoint.sh

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 baton \
 && useradd --system --uid 10001 --gid baton --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin baton
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
# Containers listen on every interface (the code's defaults are loopback, for a developer's machine).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app/libs:/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BATON_INGEST_HOST=0.0.0.0 \
    BATON_OPS_HOST=0.0.0.0
USER 10001:10001
# ingest, console, consumers' /metrics /healthz /readyz, simulator
EXPOSE 8080 8081 9100 8090
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
CMD ["help"]
