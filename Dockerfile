# The sparsearch search service (`sparsearch serve`), without torch: queries are inference-free
# (tokenized with the bundled tokenizer.json and IDF-weighted), so the image holds the core, the API
# and the engine clients only (requirements/api.lock), about a tenth of the full environment.
# Indexes are built elsewhere (`sparsearch index`, full install) into an engine or a mounted folder.
#
#   docker build -t sparsearch-api .
#   docker run -p 8000:8000 -e SPARSEARCH_BACKEND=elasticsearch -e SPARSEARCH_ENGINE_URL=http://es:9200 \
#       -e SPARSEARCH_INDEXES=cranfield sparsearch-api
#   docker run -p 8000:8000 -v "$PWD/indexes:/indexes:ro" -e SPARSEARCH_INDEXES=/indexes/cranfield sparsearch-api
#
# Settings come from SPARSEARCH_* variables (docs/api.md). An index that does not exist yet is not an
# error: /ready answers 503 until it does. tests/test_deploy.py checks this file's key lines.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# 1. The locked dependencies, hash-checked, in a layer of their own (rebuilt only when the lock changes).
COPY requirements/api.lock /tmp/api.lock
RUN pip install --no-deps --require-hashes -r /tmp/api.lock && rm /tmp/api.lock

# 2. sparsearch itself with the api and engines extras; their dependencies are already installed from the
#    lock, so nothing is resolved again (and torch can never come in).
COPY pyproject.toml README.md /tmp/sparsearch/
COPY src /tmp/sparsearch/src
RUN pip install --no-deps "/tmp/sparsearch[api,engines]" && rm -rf /tmp/sparsearch && pip check

# 3. A non-root user with a writable home: numba caches the compiled search kernels there, engine
#    backends cache the encoder they download from the engine.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin sparsearch
USER sparsearch
WORKDIR /home/sparsearch
ENV NUMBA_CACHE_DIR=/home/sparsearch/.cache/numba \
    SPARSEARCH_HOST=0.0.0.0 \
    SPARSEARCH_PORT=8000
EXPOSE 8000

# /health answers without touching indexes or engines (liveness); /ready is the readiness probe.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('SPARSEARCH_PORT', '8000'), timeout=4)"]

CMD ["sparsearch", "serve"]
