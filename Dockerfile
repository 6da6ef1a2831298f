FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY codecs codecs
COPY streams streams
RUN pip install --no-cache-dir .
ENV PUSHSTREAM_CONFIG=/config/pushstream.toml
ENTRYPOINT ["faust", "-A", "pushstream.streams.worker", "worker", "--without-web", "--loglevel", "info"]
