# One image for the web server and the scoring workers.
#   docker build -t dermatriage .
# For NVIDIA GPU workers build with --build-arg EXTRAS=gpu (docker-compose.yml's worker-gpu
# does); the worker then scores on the GPU, and without one the same image runs on the CPU.
FROM python:3.11-slim-bookworm

ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_STATIC_ROOT=/app/var/static \
    DJANGO_MEDIA_ROOT=/app/var/media \
    DJANGO_STATIC_MANIFEST=true

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml ./
COPY webapp ./webapp
COPY inference ./inference
COPY training ./training
COPY models ./models
COPY manage.py ./
# Editable, so that the app runs from /app where models/, templates and static files live.
RUN pip install -e ".${EXTRAS:+[$EXTRAS]}"

RUN useradd --create-home --uid 1000 dermatriage \
    && mkdir -p /app/var/media /app/var/static \
    && python manage.py collectstatic --noinput \
    && chown -R dermatriage /app/var
USER dermatriage
# Convert the served model to its LiteRT flatbuffer once, at build time, so a worker container
# does not spend its first start converting it.
ENV DERMATRIAGE_CACHE_DIR=/home/dermatriage/.cache/dermatriage
RUN python -m inference prepare

EXPOSE 8000
# Threaded workers; put a buffering proxy in front (docker-compose.yml's proxy service does).
CMD ["gunicorn", "webapp.config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", \
     "--worker-class", "gthread", "--threads", "4", "--access-logfile", "-"]
