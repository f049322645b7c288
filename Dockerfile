# maskserve server image: REST on :8000, gRPC on :50051, serving the shipped model
# (models/zoo, installed as package data) unless MASKSERVE_MODEL_REPOSITORY points elsewhere.
#
#   docker build -t maskserve .
#   docker run --rm -p 8000:8000 -p 50051:50051 maskserve
#
# Build arguments:
#   TORCH_INDEX_URL  where torch/torchvision come from. The default, PyTorch's CPU index,
#                    gives a CPU-only image. https://download.pytorch.org/whl/cu130 (or
#                    https://pypi.org/simple, whose Linux wheels are CUDA builds) gives the
#                    GPU flavour, several GB larger; run it with `--gpus all`.
#   EXTRAS           comma-separated extras of pyproject.toml, e.g. "gpu" (NVML metrics).
#
# Only the classic builder's syntax is used (no RUN --mount, no heredocs), so the file also
# builds where BuildKit/buildx is missing. Layers go from least to most often changed:
# torch, the other dependencies (from pyproject.toml), then the project's source.

FROM python:3.11-slim-bookworm

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ARG EXTRAS=""

ENV PATH=/opt/venv/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/maskserve \
        --shell /usr/sbin/nologin maskserve \
    && python3 -m venv /opt/venv \
    && pip install setuptools==80.9.0 wheel==0.45.1

# torch first: the largest layer, and the one that changes least often
RUN pip install --index-url "$TORCH_INDEX_URL" \
        "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

# the remaining runtime dependencies, read from pyproject.toml so this layer is rebuilt only
# when they change; the torch index stays in reach so a changed torch pin keeps its flavour.
# onnxruntime and onnxruntime-gpu install the same `onnxruntime` module: with the gpu extra
# the GPU build is reinstalled last, so its files are the ones left
COPY pyproject.toml /tmp/build/
RUN python3 -c "import sys, tomllib; p = tomllib.load(open(sys.argv[1], 'rb'))['project']; \
extras = [e for e in sys.argv[2].split(',') if e]; \
print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e]]))" \
        /tmp/build/pyproject.toml "$EXTRAS" > /tmp/build/requirements.txt \
    && pip install --extra-index-url "$TORCH_INDEX_URL" -r /tmp/build/requirements.txt \
    && if pip show --quiet onnxruntime-gpu 2>/dev/null; then \
         pip install --force-reinstall --no-deps "$(pip freeze | grep '^onnxruntime-gpu==')"; \
       fi

# the project itself (runtime + networks + shipped model as package data); pip check fails
# the build if the layers above drifted from pyproject.toml
COPY setup.py README.md /tmp/build/
COPY server /tmp/build/server
COPY models /tmp/build/models
RUN pip install --no-deps --no-build-isolation /tmp/build \
    && pip check \
    && rm -rf /tmp/build

# numeric, so Kubernetes runAsNonRoot can verify it
USER 10001:10001
WORKDIR /home/maskserve
EXPOSE 8000 50051

# /readyz, not /healthz: "healthy" should mean "can take traffic" (models loaded and warmed,
# not draining), which is what `depends_on: service_healthy` and load balancers need. Docker
# itself never restarts an unhealthy container, so a probe that fails while draining does
# no harm. Configure the port through MASKSERVE_HTTP_PORT (not --http-port) so this follows.
# The start period is generous: replicas that load and warm up side by side on a small
# host took 2-3 minutes here; the first passing probe ends it early.
HEALTHCHECK --interval=10s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('MASKSERVE_HTTP_PORT', '8000'), timeout=4)"]

# the server handles SIGTERM itself: /readyz turns 503, in-flight requests finish within
# MASKSERVE_DRAIN_GRACE_S (30 s by default), so give `docker stop` at least that (-t 40)
ENTRYPOINT ["maskserve"]
CMD ["serve"]
