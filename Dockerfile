# govbot image: the wheel (rules and migrations inside) over the locked dependencies, run as a non-root user.
# Build: docker build -t govbot:0.2.0 .     Run the whole topology: docker compose up -d (see compose.yaml)

FROM python:3.12-slim AS wheel
WORKDIR /src
RUN pip install --no-cache-dir --disable-pip-version-check "hatchling>=1.27"
COPY pyproject.toml README.md LICENSE ./
COPY bot bot
COPY rules rules
COPY migrations migrations
RUN python -c "from hatchling.build import build_wheel; build_wheel('/dist')"

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GOVBOT_CONFIG=/etc/govbot/config.toml \
    GOVBOT_WEB_HOST=0.0.0.0
# fontconfig and a CJK font: the report charts label accounts and departments in Chinese.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fontconfig fonts-noto-cjk \
    && rm -rf /var/lib/apt/lists/*
# Exactly the tested dependency set (hashes checked), then govbot itself without resolving anything again.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes -r /tmp/requirements.lock && rm /tmp/requirements.lock
COPY --from=wheel /dist/*.whl /tmp/
RUN pip install --no-deps /tmp/*.whl && rm /tmp/*.whl
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/govbot --create-home govbot \
    && mkdir -p /var/lib/govbot/data /etc/govbot/rules \
    && chown -R govbot:govbot /var/lib/govbot
COPY deploy/config.toml /etc/govbot/config.toml
USER govbot
WORKDIR /var/lib/govbot
VOLUME ["/var/lib/govbot/data"]
EXPOSE 8600
# /healthz answers 200 once the database is reachable and migrated. Worker containers have no web
# server: compose.yaml switches this check off for them.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8600/healthz', timeout=4)"]
# Migrations run on start (database.auto_migrate); then the web console, API and WeChat callback.
CMD ["govbot", "serve"]
