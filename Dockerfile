# The bot as a container: `docker build -t bot .` then `docker run --env-file .env bot`.
# Runs as a non-root user; ships pg_dump/mysqldump for backups; revisions are precompiled to bytecode.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ENV=production \
    LOG_FORMAT=json

# The database client tools that `invoke migrate` backups and restores call (pg_dump, mysqldump, ...).
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client mariadb-client \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 bot \
    && useradd --system --uid 10001 --gid bot --home-dir /app --shell /usr/sbin/nologin bot

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY alembic.ini tasks.py ./
COPY alembic ./alembic
COPY bot ./bot
# Precompile the code and every revision file, so a start never re-parses them (and works read-only),
# and store the revision manifest beside the bytecode, since the bot user cannot write it at run time.
RUN python -m compileall -q bot alembic tasks.py \
    && python -m bot.database.fastpath \
    && mkdir -p /app/data /app/backups \
    && chown bot:bot /app/data /app/backups

USER bot
VOLUME ["/app/data", "/app/backups"]

# Only meaningful with HEALTH_PORT set; without it the check passes (the process is the health signal).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; p = os.environ.get('HEALTH_PORT'); p and urllib.request.urlopen('http://127.0.0.1:%s/healthz' % p, timeout=4)"

# SIGTERM drains in-flight updates for up to SHUTDOWN_TIMEOUT (8 s) — inside Docker's 10 s stop grace period.
STOPSIGNAL SIGTERM
CMD ["invoke", "start"]
