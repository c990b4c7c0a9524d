# MailCue server image: one process serving HTTP, SMTP, IMAP and POP3.
FROM python:3.11-slim
WORKDIR /app
# The locked dependencies first: this layer stays cached while only our code changes.
COPY requirements/serve.txt requirements/serve.txt
RUN pip install --no-cache-dir -r requirements/serve.txt
COPY pyproject.toml README.md ./
COPY mailcue_server ./mailcue_server
RUN pip install --no-cache-dir --no-deps . \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin mailcue \
    && mkdir -p /data && chown mailcue /data
# Never root: every default port is above 1024.
USER mailcue
ENV MAILCUE_DATA_DIR=/data MAILCUE_BIND=0.0.0.0
# The database (SQLite), the generated secret and the local CA: keep them across upgrades.
VOLUME ["/data"]
# HTTP, SMTP, submission, SMTPS, IMAP, IMAPS, POP3, POP3S.
EXPOSE 8088 1025 1587 1465 1143 1993 1110 1995
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["mailcue", "healthcheck"]
CMD ["mailcue", "serve"]
