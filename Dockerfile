# The WES engine image: `wes worker`, `wes exporter`, `wes sim` services, the control API and the dashboard
# all run from it (docker-compose.yml picks the command). Python 3.11 on Debian bookworm, like CI.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WES_HOME=/var/lib/wes

WORKDIR /app
# Dependencies first (cached while only the code changes): install the project's requirements from
# pyproject.toml with a stub package, then the real code.
COPY pyproject.toml README.md ./
RUN mkdir -p engine examples sim && touch engine/__init__.py examples/__init__.py sim/__init__.py \
    && pip install . && pip uninstall -y wes-orchestration-engine && rm -rf engine examples sim
COPY . .
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 wes \
    && mkdir -p /var/lib/wes && chown wes /var/lib/wes
USER wes

# 9464 /metrics (wes exporter), 8000 control API, 8501 dashboard, 9100-9105 simulated services
EXPOSE 9464 8000 8501 9100-9105
CMD ["wes", "--help"]
