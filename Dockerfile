# One image for every hookhub process (SPEC §2):
#   docker run IMAGE serve <gateway|delivery|oauth|sync|importer> --host 0.0.0.0
#   docker run IMAGE edge
# docker-compose.yml and deploy/ choose the command; the image itself runs nothing by default.

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: install the project (non-editable) and its dependencies into a venv ----------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/hookhub \
    && /opt/hookhub/bin/pip install --upgrade pip

WORKDIR /src
# Metadata first so the dependency layer is reused while only the code changes.
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
RUN /opt/hookhub/bin/pip install . \
    && /opt/hookhub/bin/hookhub --help > /dev/null

# --- runtime -------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="hookhub" \
      org.opencontainers.image.description="hookhub services (gateway, delivery, oauth, sync, importer) and the edge router"

ENV PATH=/opt/hookhub/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOOKHUB_HOST=0.0.0.0 \
    HOOKHUB_DATA_DIR=/data \
    HOOKHUB_LOG_FORMAT=json

# A fixed numeric uid/gid so Kubernetes can verify runAsNonRoot. /data belongs to it: a
# fresh named volume mounted there inherits this ownership (docker-compose.yml relies on it).
RUN groupadd --system --gid 10001 hookhub \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/hookhub --create-home \
        --shell /usr/sbin/nologin hookhub \
    && mkdir -p /data \
    && chown 10001:10001 /data

COPY --from=build /opt/hookhub /opt/hookhub

USER 10001:10001
WORKDIR /home/hookhub

# edge, gateway, delivery, oauth, sync, importer (shared/kernel/settings.py SERVICE_PORTS)
EXPOSE 8080 8081 8082 8083 8084 8085

ENTRYPOINT ["hookhub"]
CMD ["--help"]
