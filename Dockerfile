# The RIS (Flask + SQLAlchemy) behind gunicorn, for docker-compose.yml. Orthanc runs in
# its own container (orthancteam/orthanc) and loads plugins/ from a bind mount, so this
# image holds the RIS only.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The report PDF's fonts (ris_app/reporting/fonts.py, the same packages as the Makefile's
# RUN_DEBS): without them names in Chinese, Japanese, Korean or Thai print as boxes.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core fonts-droid-fallback fonts-tlwg-loma-ttf \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what `pip install` needs: .dockerignore lets nothing else into the build context,
# so a local data/ folder, .venv or .env can never end up in an image layer.
COPY pyproject.toml README.md ./
COPY ris_app ./ris_app
# The postgres extra brings psycopg, so ORTHANC_RIS_DATABASE_URL may name PostgreSQL
# without rebuilding.
RUN pip install '.[postgres]'

# A fixed, unprivileged user. A new named volume copies the ownership of its mount point
# from the image, so the data folder is writable by this user from the first start.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/orthanc-ris --no-create-home ris \
 && install -d -o ris -g ris -m 0750 /var/lib/orthanc-ris

ENV ORTHANC_RIS_HOME=/var/lib/orthanc-ris \
    ORTHANC_RIS_HTTP_HOST=0.0.0.0 \
    ORTHANC_RIS_HTTP_PORT=5000

USER ris
WORKDIR /var/lib/orthanc-ris
EXPOSE 5000

# /api/health answers 503 when the database is unreachable; urlopen raises on it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ['ORTHANC_RIS_HTTP_PORT'], timeout=4)"

# Migrate first, so a new release's schema is in place before any worker serves. `exec`
# makes gunicorn PID 1: `docker stop` (SIGTERM) then lets requests finish. No gunicorn
# access log: the RIS logs each request itself by route pattern, since concrete paths hold
# MRNs and accession numbers.
CMD ["sh", "-c", "orthanc-ris migrate && exec gunicorn --bind \"$ORTHANC_RIS_HTTP_HOST:$ORTHANC_RIS_HTTP_PORT\" --workers \"${ORTHANC_RIS_WORKERS:-2}\" --worker-class gthread --threads 4 --timeout 60 ris_app.wsgi:app"]
