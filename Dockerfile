# Production-like image for docker-compose.yml: gunicorn web and RQ workers share it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 VAR_DIR=/app/var
WORKDIR /app

# Tesseract and its language data from Debian (OCR_LANGUAGES: tesseract-ocr-<code> packages).
ARG OCR_LANGUAGES=eng
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr \
       $(for code in $(echo "$OCR_LANGUAGES" | tr ',+' '  '); do echo "tesseract-ocr-$(echo $code | tr _ -)"; done) \
    && rm -rf /var/lib/apt/lists/*

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
RUN DEBUG=0 SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v 0 \
    && useradd --system --uid 1000 app && mkdir -p /app/var/media && chown -R app /app/var
USER app

EXPOSE 8000
# --limit-request-line: gunicorn's maximum (its default, 4094, answers longer request lines with an HTML
# 400); REQUEST_MAX_QUERY_LENGTH stays below it so that long query strings get the API's JSON 414.
CMD ["gunicorn", "pipeline_project.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "2", \
     "--limit-request-line", "8190", "--access-logfile", "-"]
