# Router image: slim Python, non-root, data volume, healthcheck on /healthz.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    SWARM_DATABASE_URL=sqlite:////data/swarm.db \
    SWARM_DATA_DIR=/data \
    SWARM_RUNS_DIR=/data/runs \
    SWARM_HOST=0.0.0.0 \
    SWARM_PORT=8000

WORKDIR /srv
COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
COPY configs ./configs
# bubblewrap isolates code_eval (see README "Hardening"); a plain install: pyproject.toml ships migrations/ and
# configs/ inside the package.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir . \
    && useradd --create-home --uid 10001 swarm \
    && mkdir -p /data && chown swarm:swarm /data

USER 10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
CMD ["swarm", "serve", "--host", "0.0.0.0", "--port", "8000"]
