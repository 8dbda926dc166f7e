# The assistant's one image: the Rasa environment (.venv: Rasa 3.6, the action server) and the gateway's own
# (.venv-gateway: current aiohttp), as `make install` makes them, and the model trained at build time, so that
# every replica of a release serves the same model. compose.yaml runs each process of it as its own service.
FROM python:3.10.13-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=2 RASA_TELEMETRY_ENABLED=false SQLALCHEMY_SILENCE_UBER_WARNING=1

COPY requirements.txt requirements-gateway.txt ./
RUN python -m venv .venv && .venv/bin/pip install -r requirements.txt \
    && python -m venv .venv-gateway && .venv-gateway/bin/pip install -r requirements-gateway.txt

COPY . .
# Training needs no secret and no database; nothing of a conversation is in the image.
RUN .venv/bin/python -m bot train && rm -rf var/* .rasa \
    && useradd --system --uid 10001 --home-dir /app ksos && mkdir -p var && chown -R ksos var
USER ksos
ENV PATH=/app/.venv/bin:$PATH
