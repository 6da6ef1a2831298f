FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md requirements-runtime.lock ./
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements-runtime.lock
COPY codecs codecs
COPY streams streams
RUN pip install --no-cache-dir --no-deps --no-build-isolation .
ENV PUSHSTREAM_CONFIG=/config/pushstream.toml
ENTRYPOINT ["faust", "-A", "pushstream.streams.worker", "worker", "--without-web", "--loglevel", "info"]
