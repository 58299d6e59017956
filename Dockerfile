# The Footfall collector and dashboard. See docs/deployment.md.
#   docker build -t footfall .
#   docker run -d -p 127.0.0.1:8000:8000 -v footfall-data:/data -v footfall-backups:/backups footfall
# Checked by hadolint in `make test` (tests/test_deployment.py).

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Wheels of Footfall and of every dependency of the server, for a final stage without a compiler.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[server]"

FROM python:3.12-slim
# A fixed, unprivileged uid that owns nothing but the data and backup volumes (a new named
# volume takes this ownership and mode from the image).
RUN groupadd --system --gid 10001 footfall \
    && useradd --system --uid 10001 --gid footfall --home-dir /data --shell /usr/sbin/nologin footfall \
    && mkdir /data /backups \
    && chown footfall:footfall /data /backups \
    && chmod 0700 /data /backups
COPY --from=build /wheels /wheels
# Only the wheels built above (Footfall and the server's dependencies), never an index.
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
    && rm -rf /wheels
ENV FOOTFALL_DATA=/data \
    FOOTFALL_HOST=0.0.0.0 \
    FOOTFALL_PORT=8000 \
    PYTHONUNBUFFERED=1
USER 10001:10001
VOLUME ["/data", "/backups"]
EXPOSE 8000
# /healthz answers while the event loop runs; python is in the image, curl is not.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["footfall"]
CMD ["serve"]
