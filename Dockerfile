# The bot as a container: `docker build -t bot .` then `docker run --env-file .env bot`.
# Installs exactly the hashed lock; runs as uid 10001 in group 0, or as any uid in group 0 (OpenShift), with a
# read-only root filesystem: the code, every revision and the revision manifest are compiled at build time, and
# only /app/data and /app/backups are written. deploy/docker/smoke.sh builds and runs it for real.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    ENV=production \
    LOG_FORMAT=json

# The database client tools that `invoke migrate` backups and restores call (pg_dump, mysqldump, ...).
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client mariadb-client \
    && apt-get clean && rm -rf /var/lib/apt/lists/*

# Group 0 owns what the bot writes, so an arbitrary uid in group 0 (OpenShift's restricted SCC) can write it too.
RUN useradd --system --uid 10001 --gid 0 --home-dir /app --no-create-home --shell /usr/sbin/nologin bot

WORKDIR /app
# A virtualenv: the same install on the official image and on a distribution's python3 (which refuses
# system-wide pip installs). Every transitive dependency pinned and hash-checked (`bash .ci/lock` makes it).
COPY requirements.lock ./
RUN python3 -m venv "$VIRTUAL_ENV" \
    && pip install --no-deps --require-hashes -r requirements.lock \
    && pip check

COPY alembic.ini tasks.py ./
COPY alembic ./alembic
COPY bot ./bot
# Precompile the code and every revision file, so a start never re-parses them (and works read-only),
# and store the revision manifest beside the bytecode, since nothing can write it at run time.
RUN python -m compileall -q bot alembic tasks.py \
    && python -m bot.migrate.fastpath \
    && mkdir -p /app/data /app/backups \
    && chown 10001:0 /app/data /app/backups \
    && chmod 0770 /app/data /app/backups

USER 10001:0
VOLUME ["/app/data", "/app/backups"]

# Probes /livez where HEALTH_HOST listens (loopback when it listens on every address); passes without HEALTH_PORT.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["python", "-m", "bot.probe"]

# SIGTERM drains in-flight updates for up to SHUTDOWN_TIMEOUT (8 s) — inside Docker's 10 s stop grace period.
STOPSIGNAL SIGTERM
CMD ["invoke", "start"]
