# MailCue server image: one process serving HTTP, SMTP, IMAP and POP3.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY mailcue_server ./mailcue_server
RUN pip install --no-cache-dir . && useradd --system --home /data mailcue && mkdir -p /data \
    && chown mailcue /data
USER mailcue
ENV MAILCUE_DATA_DIR=/data MAILCUE_BIND=0.0.0.0
EXPOSE 8088 1025 1587 1465 1143 1993 1110 1995
HEALTHCHECK --interval=10s --timeout=3s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8088/api/v1/health')"
CMD ["mailcue", "serve"]
