# The approval bot in HTTP mode. Build: docker build -t approval-bot .
# Run:   docker run --env-file .env -v $PWD/bot.yml:/app/bot.yml:ro -p 3000:3000 approval-bot
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=3000 \
    BOT_CONFIG=/app/bot.yml \
    DATA_DIR=/app/data
COPY --from=build /install /usr/local
RUN useradd --create-home --uid 10001 bot \
    && mkdir -p /app/data \
    && chown bot:bot /app/data
WORKDIR /app
USER bot
EXPOSE 3000
# /healthz answers while the process is up; /readyz also needs Redis (use it for traffic).
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"3000\")}/healthz', timeout=2)" || exit 1
CMD ["approval-bot", "serve"]
