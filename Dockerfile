# ollacord, the Discord bot, as a non-root user. Its SQLite database lives in /app/data
# (DATABASE_URL's default, sqlite+aiosqlite:///data/ollacord.db, is relative to /app).
# Usually built and run by docker compose: see "Deploy with Docker Compose" in the README.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN groupadd --system --gid 10001 ollacord \
 && useradd --system --uid 10001 --gid ollacord --home-dir /app --shell /usr/sbin/nologin ollacord \
 && mkdir -p /app/data \
 && chown ollacord:ollacord /app/data

# Dependencies first, from pyproject.toml alone (empty packages stand in for the code), so
# a change to the code does not reinstall them.
COPY pyproject.toml /src/
RUN mkdir /src/bot /src/cogs /src/migrations \
 && touch /src/README.md /src/bot/__init__.py /src/cogs/__init__.py /src/migrations/__init__.py \
 && pip install /src \
 && pip uninstall -y ollacord \
 && rm -rf /src

# The project itself. .dockerignore lets in only what `pip install` needs: no .env, no data.
COPY . /src
RUN pip install --no-deps /src && rm -rf /src

WORKDIR /app
# The HTTP server serves /healthz for the health check below. It listens on HTTP_HOST,
# 127.0.0.1 by default (inside the container only); set HTTP_HOST=0.0.0.0 to publish it.
ENV HTTP_PORT=8080
EXPOSE 8080
VOLUME ["/app/data"]
USER ollacord

# A graceful stop (SIGTERM does the same): answers in flight get SHUTDOWN_GRACE_SECONDS to
# finish before the bot disconnects.
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % (os.environ.get('HTTP_PORT') or '8080'), timeout=4)"]

# Migrate the database, then run the bot (exec: the bot is PID 1 and gets the stop signal).
CMD ["sh", "-c", "ollacord migrate && exec ollacord run"]
