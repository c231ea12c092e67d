# The modelwatch server side (analyzer, schema migrations, `modelwatch serve`) as an image.
#   docker build -t modelwatch .
#   docker run --rm -e MODELWATCH_CLICKHOUSE_URL=http://user:pw@clickhouse:8123/modelwatch modelwatch schema apply
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# only what the wheel is built from (pyproject.toml lists the two source roots)
COPY pyproject.toml README.md ./
COPY sdk ./sdk
COPY analyzer ./analyzer
RUN pip install --no-compile ".[analyzer]" && rm -rf /src

RUN useradd --create-home --uid 10001 modelwatch
USER modelwatch
WORKDIR /home/modelwatch

ENTRYPOINT ["modelwatch"]
CMD ["analyzer", "--config", "/etc/modelwatch/analyzer.toml"]
