"""Settings for the pipeline service, read from the environment.

Every variable is documented in README.md and .env.example. Malformed values
stop start-up with ``ImproperlyConfigured`` naming the variable.
"""

import ipaddress
import os
import re
import socket
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key
from prometheus_client import values as prometheus_values

from pipeline_project.lib.env import (
    env_bool,
    env_bytes,
    env_int,
    env_list,
    env_rate,
    env_seconds,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

# --- Core -------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
# Without DEBUG a missing SECRET_KEY stops the web application from starting (wsgi.py, asgi.py:
# pipeline_project.serving). Commands that need no secret (makemigrations, check, migrate) still
# run, with a throwaway random key that signs nothing anyone keeps.
SECRET_KEY_MISSING = not SECRET_KEY and not DEBUG
if not SECRET_KEY:
    SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production" if DEBUG else get_random_secret_key()
# HMAC key for API key hashes; separate so SECRET_KEY can rotate without revoking every key.
API_KEY_HMAC_SECRET = env_str("API_KEY_HMAC_SECRET", SECRET_KEY)
# Fernet keys encrypting the secrets the service must read back (webhook signing secrets), newest
# first; unset: one derived from SECRET_KEY (pipeline_project/lib/crypto.py).
SECRETS_ENCRYPTION_KEYS = env_list("SECRETS_ENCRYPTION_KEYS", [])

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
# Where clients reach the API: the links inside webhook messages (sent with no request to build them from).
PUBLIC_URL = env_url("PUBLIC_URL", "http://localhost:8000", schemes=("http", "https")).rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY") else None
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("BEHIND_TLS_PROXY")
# Production (README, "Production settings"): BEHIND_TLS_PROXY, SECURE_SSL_REDIRECT and the HSTS
# settings on make `manage.py check --deploy` clean.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)  # plain HTTP answers a redirect to HTTPS
SECURE_REDIRECT_EXEMPT = [r"^health(/|$)"]  # load balancers and orchestrators probe over plain HTTP
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)  # set once the site is HTTPS-only
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from here, not a CDN
    "django_rq",
    "django_prometheus",
    "accounts",
    "pipelines",
    "jobs",
    "webhooks",
    "audit",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",  # first: times everything below
    "django.middleware.security.SecurityMiddleware",
    "audit.middleware.AuditMiddleware",  # sees every answer below it
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "pipeline_project.lib.middleware.QueryStringLimitMiddleware",
    "pipeline_project.lib.middleware.ChunkedBodyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",  # last: sees the view's answer
]

ROOT_URLCONF = "pipeline_project.urls"
WSGI_APPLICATION = "pipeline_project.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
APPEND_SLASH = False  # API paths have no trailing slash; never redirect a POST.

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
try:
    _db = dj_database_url.parse(DATABASE_URL)
except ValueError as exc:
    raise ImproperlyConfigured(f"Environment variable DATABASE_URL is invalid: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Web and worker processes share one SQLite file: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock up front so no transaction fails half-way.
    _db["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _db["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
    _db["CONN_HEALTH_CHECKS"] = env_bool("DATABASE_CONN_HEALTH_CHECKS", False)
    if env_bool("DATABASE_PREPARED_STATEMENTS", True):  # off behind PgBouncer in transaction mode
        _db["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": 5}
    _db["TEST"] = {"NAME": env_str("DATABASE_TEST_NAME", f"test_{_db['NAME']}")}
else:
    raise ImproperlyConfigured(
        f"Environment variable DATABASE_URL={DATABASE_URL!r} is invalid: only postgres:// and sqlite:// are supported."
    )
# django-prometheus's subclasses of the same backends count statements, their durations and errors
# (/metrics; the psycopg cursor class chosen above, server-side binding or not, is kept).
_db["ENGINE"] = _db["ENGINE"].replace("django.db.backends.", "django_prometheus.db.backends.")
DATABASES = {"default": _db}

# --- Redis, RQ and cache -----------------------------------------------------
REDIS_URL = env_url("REDIS_URL", "redis://127.0.0.1:6379/0", schemes=("redis", "rediss"))
RQ_QUEUE_NAMES = ("high", "default", "low", "webhooks")
RQ_DEFAULT_TIMEOUT = env_seconds("RQ_DEFAULT_TIMEOUT", 600)
RQ_QUEUES = {name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": RQ_DEFAULT_TIMEOUT} for name in RQ_QUEUE_NAMES}
RQ = {"COMMIT_MODE": "on_db_commit"}
RQ_SHOW_ADMIN_LINK = False  # django-rq's pages are linked from our dashboard (/admin/rq/), not listed twice

# --- Metrics ----------------------------------------------------------------------
# GET /metrics (pipeline_project/metrics.py): django-prometheus's request and database metrics and ours.
# Every process (web, RQ workers, commands) keeps its counters and histograms in files of its own in
# PROMETHEUS_MULTIPROC_DIR, which /metrics adds up (prometheus_client's multiprocess mode): web and
# workers must share it (one machine, or one volume of one Docker host); empty it only while none runs.
# Exported here, before any metric exists, for prometheus_client and for child processes.
PROMETHEUS_MULTIPROC_DIR = Path(env_str("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "metrics")))
PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(PROMETHEUS_MULTIPROC_DIR)
# A process's files are named after its host and pid (prometheus_client's default, the pid alone,
# collides between containers sharing the directory: each has its own pids).
METRICS_PROCESS_PREFIX = socket.gethostname().replace("_", "-")
prometheus_values.ValueClass = prometheus_values.MultiProcessValue(lambda: f"{METRICS_PROCESS_PREFIX}-{os.getpid()}")
# When set, /metrics answers only `Authorization: Bearer <METRICS_TOKEN>` (401 otherwise). Unset, it is
# open: restrict it at the proxy.
METRICS_TOKEN = env_str("METRICS_TOKEN")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "pipeline",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

# --- Files and storage -------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
if AWS_STORAGE_BUCKET_NAME:
    AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL") or None
    AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME") or None
    AWS_QUERYSTRING_EXPIRE = env_seconds("AWS_QUERYSTRING_EXPIRE", 3600)
    AWS_DEFAULT_ACL = None
    AWS_S3_FILE_OVERWRITE = False
    _default_storage = {"BACKEND": "storages.backends.s3.S3Storage"}
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Uploads larger than FILE_UPLOAD_MAX_MEMORY_SIZE stream to a temporary file, never to memory.
UPLOAD_MAX_FILE_SIZE = env_bytes("UPLOAD_MAX_FILE_SIZE", 1024**3)
UPLOAD_MAX_FILES = env_int("UPLOAD_MAX_FILES", 20, minimum=1)
JOB_MAX_FILES = env_int("JOB_MAX_FILES", 100, minimum=1)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = env_str("FILE_UPLOAD_TEMP_DIR") or None
DATA_UPLOAD_MAX_MEMORY_SIZE = env_bytes("REQUEST_MAX_BODY_SIZE", 2 * 1024 * 1024)  # non-file request bodies
REQUEST_MAX_QUERY_LENGTH = env_int("REQUEST_MAX_QUERY_LENGTH", 4096, minimum=1)  # /api/ query strings (414 beyond)
# Networks user-supplied URLs may reach although private (e.g. an internal document server).
SSRF_ALLOWED_NETWORKS = env_list("SSRF_ALLOWED_NETWORKS", [])
for _network in SSRF_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network)
    except ValueError:
        raise ImproperlyConfigured(
            f"Environment variable SSRF_ALLOWED_NETWORKS: invalid network {_network!r}."
        ) from None
FETCH_MAX_SIZE = env_bytes("FETCH_MAX_SIZE", 100 * 1024 * 1024)
FETCH_TIMEOUT = env_seconds("FETCH_TIMEOUT", 30)
RESULT_INLINE_MAX_SIZE = env_bytes("RESULT_INLINE_MAX_SIZE", 1024 * 1024)  # larger texts go to storage
RESULT_RETENTION = env_seconds("RESULT_RETENTION", 30 * 86400)  # results expire after this
# Stored inputs of jobs ended this long ago (failed, cancelled, or completed with an expired result)
# are deleted by cleanup_uploads (daily from the scheduler); such a job can no longer be retried.
UPLOAD_RETENTION = env_seconds("UPLOAD_RETENTION", 7 * 86400)
JOB_HEARTBEAT_TIMEOUT = env_seconds("JOB_HEARTBEAT_TIMEOUT", 30)  # a processing job silent this long is requeued
# Webhooks: each attempt's timeout; the delays before each attempt (seconds, jitter added), after
# which a delivery fails; a subscription failing without a success this long is disabled; a rotated
# secret keeps signing beside the new one this long.
# Audit trail: every /api/ request recorded (off only to measure what it costs: bench/bench_audit.py).
AUDIT_API_REQUESTS = env_bool("AUDIT_API_REQUESTS", True)
# API calls' records are queued in Redis and written in batches (audit/writer.py); off: written in the request.
AUDIT_DEFERRED_WRITES = env_bool("AUDIT_DEFERRED_WRITES", True)
AUDIT_BODY_MAX = env_int("AUDIT_BODY_MAX", 4096)  # characters of a redacted request body kept
AUDIT_REDACT_KEYS = env_list("AUDIT_REDACT_KEYS", [])  # extra key patterns (regular expressions) to redact
AUDIT_LOG_RETENTION = env_int("AUDIT_LOG_RETENTION", 365)  # days; older records are pruned daily (0: never)

WEBHOOK_TIMEOUT = env_seconds("WEBHOOK_TIMEOUT", 15)
WEBHOOK_RETRY_SCHEDULE = [
    int(delay) for delay in env_list("WEBHOOK_RETRY_SCHEDULE", "0,5,300,1800,7200,18000,36000,36000".split(","))
]
WEBHOOK_DISABLE_AFTER = env_seconds("WEBHOOK_DISABLE_AFTER", 5 * 86400)
WEBHOOK_SECRET_ROTATION_OVERLAP = env_seconds("WEBHOOK_SECRET_ROTATION_OVERLAP", 86400)
WEBHOOK_DELIVERY_RETENTION = env_int("WEBHOOK_DELIVERY_RETENTION", 30, minimum=1)  # days; finished deliveries
# Tesseract languages the ocr stage reads with by default (their Debian packages are installed by
# scripts/ensure-ocr.sh); a pipeline's ocr stage may name others that are installed.
OCR_LANGUAGES = env_list("OCR_LANGUAGES", ["eng"])  # eng,fra,...
if not OCR_LANGUAGES or not all(re.fullmatch(r"[a-z][a-z_]{1,15}", code) for code in OCR_LANGUAGES):
    raise ImproperlyConfigured("Environment variable OCR_LANGUAGES must be Tesseract language codes, e.g. eng,fra.")
# Modules that register extra pipeline stages when imported (plugins; the tests' crash stages).
PIPELINE_STAGE_MODULES = env_list("PIPELINE_STAGE_MODULES", [])
# Our worker class (jobs.worker.Worker) parses documents in a child process, replaced after this
# many documents, and killed (the job fails memory_limit_exceeded) above this much memory.
WORKER_CHILD_MAX_TASKS = env_int("WORKER_CHILD_MAX_TASKS", 200)
WORKER_CHILD_MAX_MEMORY = env_bytes("WORKER_CHILD_MAX_MEMORY", 2048 * 1024 * 1024)

# --- Auth -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env_seconds("JWT_ACCESS_TTL", 15 * 60)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env_seconds("JWT_REFRESH_TTL", 7 * 86400)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "SIGNING_KEY": env_str("JWT_SIGNING_KEY", SECRET_KEY),
    "AUTH_HEADER_TYPES": ("Bearer",),
}
API_KEY_LAST_USED_RESOLUTION = 60  # seconds between last_used_at writes for one key
AUTH_CACHE_TTL = env_int("AUTH_CACHE_TTL", 60)  # seconds in Redis; 0 = look every request up in the database
AUTH_LOCAL_CACHE_TTL = env_int("AUTH_LOCAL_CACHE_TTL", 1)  # seconds in process; bounds revocation delay elsewhere
THROTTLE_SYNC_INTERVAL = env_int("THROTTLE_SYNC_INTERVAL", 1)  # seconds between a process's counter flushes

# --- REST framework and OpenAPI ---------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.JWTAuthentication",
        "accounts.authentication.ApiKeyAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["pipeline_project.lib.permissions.HasPermission"],
    "DEFAULT_THROTTLE_CLASSES": [
        "pipeline_project.lib.throttling.PrincipalRateThrottle",
        "pipeline_project.lib.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "principal": env_rate("THROTTLE_RATE_USER", "1200/min"),
        "anon": env_rate("THROTTLE_RATE_ANON", "120/min"),
        "login": env_rate("THROTTLE_RATE_LOGIN", "10/min"),
    },
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["pipeline_project.lib.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "pipeline_project.lib.pagination.PagePagination",
    "DEFAULT_SCHEMA_CLASS": "pipeline_project.lib.schema.AutoSchema",
    "DEFAULT_METADATA_CLASS": "pipeline_project.lib.permissions.AllowedMethodsMetadata",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "pipeline_project.lib.renderers.LenientContentNegotiation",
    "URL_FORMAT_OVERRIDE": None,  # no ?format=: one representation per endpoint
    "EXCEPTION_HANDLER": "pipeline_project.lib.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
    "PAGE_SIZE": 20,
}
PAGINATION_EXACT_COUNT_LIMIT = env_int("PAGINATION_EXACT_COUNT_LIMIT", 1000, minimum=1)
SPECTACULAR_SETTINGS = {
    "TITLE": "Document pipeline service API",
    "DESCRIPTION": (
        "Submit documents as jobs, run them through versioned pipelines, fetch results. "
        "Authenticate with `Authorization: Bearer <JWT>` (from `POST /api/v1/auth/login`) or an API key "
        "(`Authorization: Api-Key <key>` or `X-API-Key: <key>`). Errors always have the shape "
        '`{"error": {"code", "message", "details"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "jobs.models.JobStatus",
        "FileStatusEnum": "jobs.models.FileStatus",
        "ApiKeyStatusEnum": ["active", "expired", "revoked"],
        "SourceTypeEnum": "jobs.models.SourceType",
        "UrlSourceTypeEnum": ["url"],
        "TextSourceTypeEnum": ["text"],
        "UploadSourceTypeEnum": ["upload"],
    },
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"persistAuthorization": True},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "pipelines.api.schema.add_config_components",
    ],
}

# --- Internationalisation -----------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Logging ----------------------------------------------------------------
# Web and workers log to stderr; every line carries the request id and the job id it concerns
# (pipeline_project/lib/logs.py). LOG_FORMAT=json: one JSON object per line, for log shippers.
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(f"Environment variable LOG_LEVEL={LOG_LEVEL!r} is invalid: expected DEBUG..CRITICAL.")
LOG_FORMAT = env_str("LOG_FORMAT", "plain").lower()
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"Environment variable LOG_FORMAT={LOG_FORMAT!r} is invalid: expected plain or json.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "pipeline_project.lib.logs.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s%(context)s %(message)s"},
        "json": {"()": "pipeline_project.lib.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own handlers (a second console copy under DEBUG, runserver's request lines)
        # give way to the root's: one line per record, in LOG_FORMAT.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.db.backends": {"level": "INFO"},
    },
}
