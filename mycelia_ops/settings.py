"""Settings read from the environment.

With nothing set, the embedded default runs: SQLite and a filesystem Celery broker under the
data folder, so `make run` needs no server. Production values come only from the environment.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp import constants as csp
from django.core.exceptions import ImproperlyConfigured

from mycelia_ops.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
# Everything the product writes goes under DATA_DIR (database, broker, media, mail, logins). The
# folders are made at start (mycelia_ops.apps), not here: importing settings writes nothing but
# the embedded setup's own secret key, when there is none yet.
DATA_DIR = Path(env_str("MYCELIA_DATA_DIR", str(BASE_DIR / "data")))

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG and env_bool("MYCELIA_REQUIRE_SECRET_KEY", False):
        raise ImproperlyConfigured("SECRET_KEY must be set in production")
    # The embedded setup makes its own key once and keeps it in the data folder.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "axes",
    "mycelia_ops",
    "upgrades",
    "flags",
    "comms",
]

WHITENOISE_USE_FINDERS = True  # serve static/ straight from the source tree when not collected

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # Content-Security-Policy on every response
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # With OIDC on, renews a session through the provider every OIDC_RENEW_SECONDS.
    "mycelia_ops.oidc.SessionRenewal",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "mycelia_ops.errors.MyceliaErrorMiddleware",  # the one place refusals become answers
    # Last, as django-axes asks: it turns a locked-out sign-in into its lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mycelia_ops.urls"
WSGI_APPLICATION = "mycelia_ops.wsgi.application"
ASGI_APPLICATION = "mycelia_ops.asgi.application"

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
                "mycelia_ops.context_processors.roles",
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'mycelia_ops.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A worker and the web server write to one file: wait for the lock instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so that worker processes started by the tests share the test database.
    DATABASES["default"]["TEST"] = {
        "NAME": str(DATA_DIR / f"test_mycelia_ops_{os.getpid()}.sqlite3")
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "upgrades:list"
LOGOUT_REDIRECT_URL = "login"

# Throttle repeated failed sign-ins: after AXES_FAILURE_LIMIT failures for one username from one
# address, further tries are refused for AXES_COOLOFF_MINUTES.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("AXES_COOLOFF_MINUTES", 15) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_ENABLED = env_bool("AXES_ENABLED", True)

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Production runs collectstatic and sets this; the embedded setup and tests serve as is.
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env_bool("MYCELIA_MANIFEST_STATIC", False)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(DATA_DIR / "media")))

# Artifacts (backups, log captures): written by workers, downloaded through the web processes, so
# both must see the same storage (docs/artifacts.md). "filesystem" keeps them under MEDIA_ROOT
# (one host, or one volume mounted by web and worker alike); "s3" puts them in an S3-compatible
# bucket any node can reach.
ARTIFACTS_STORAGE = env_str("ARTIFACTS_STORAGE", "filesystem") or "filesystem"
if ARTIFACTS_STORAGE == "filesystem":
    # No fixed location: FileSystemStorage follows MEDIA_ROOT (names start with "artifacts/").
    STORAGES["artifacts"] = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
elif ARTIFACTS_STORAGE == "s3":
    _bucket = env_str("ARTIFACTS_S3_BUCKET", "")
    if not _bucket:
        raise ImproperlyConfigured("ARTIFACTS_STORAGE=s3 needs ARTIFACTS_S3_BUCKET")
    STORAGES["artifacts"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": _bucket,
            "endpoint_url": env_str("ARTIFACTS_S3_ENDPOINT_URL", "") or None,
            "region_name": env_str("ARTIFACTS_S3_REGION", "") or None,
            # None: boto3 finds credentials itself (an instance role, ~/.aws, AWS_* variables).
            "access_key": env_str("AWS_ACCESS_KEY_ID", "") or None,
            "secret_key": env_str("AWS_SECRET_ACCESS_KEY", "") or None,
            "default_acl": None,  # private, as the bucket's policy says
            "querystring_auth": True,
            "file_overwrite": False,  # two backups with one name both keep their file
            # A download is read through a temporary file that spills to disk past 8 MiB, so a
            # large backup never sits whole in a web process's memory.
            "max_memory_size": 8 * 1024 * 1024,
        },
    }
else:
    raise ImproperlyConfigured(
        f"ARTIFACTS_STORAGE must be filesystem or s3, not {ARTIFACTS_STORAGE!r}"
    )

# Security: secure cookies and headers whenever the site is served over HTTPS (production).
SECURE_SSL = env_bool("SECURE_SSL", False)
SESSION_COOKIE_SECURE = SECURE_SSL
CSRF_COOKIE_SECURE = SECURE_SSL
SECURE_SSL_REDIRECT = SECURE_SSL
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if SECURE_SSL else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_SSL
SECURE_HSTS_PRELOAD = SECURE_SSL
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("SECURE_PROXY_SSL", False) else None
)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Content-Security-Policy (django-csp): nothing inline, everything from this site. htmx's
# indicator style and eval'd trigger filters are switched off in base.html's htmx-config. One
# page needs an inline <style>: the upgrade report, a single file that prints and archives on
# its own; it takes a per-request nonce (NONCE is left out of the header where none was used).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", csp.NONCE],
        "img-src": ["'self'", "data:"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
    }
}

# Celery: Redis wherever it is set, a filesystem broker with no server otherwise.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = DATA_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_IGNORE_RESULT = True
# A request that queues work must not hang when the broker is down: the run row stays queued and
# the sweep sends it later.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_TIMEOUT = env_int("CELERY_BROKER_CONNECTION_TIMEOUT", 3)
CELERY_BEAT_SCHEDULE = {
    "check-runs-sweep": {
        "task": "upgrades.check_runs_sweep",
        "schedule": env_int("MYCELIA_SWEEP_SECONDS", 15),
    },
    "events-react": {
        "task": "upgrades.events_react",
        "schedule": env_int("MYCELIA_EVENTS_REACT_SECONDS", 10),
    },
    "monitoring-tick": {
        "task": "upgrades.monitoring_tick",
        "schedule": env_int("MYCELIA_MONITORING_TICK_SECONDS", 30),
    },
    "reviews-remind": {
        "task": "upgrades.reviews_remind",
        "schedule": env_int("MYCELIA_REVIEW_REMIND_SECONDS", 300),
    },
    "ops-heartbeat": {"task": "comms.ops_heartbeat", "schedule": 30},
    "comms-deliveries-sweep": {"task": "comms.deliveries_sweep", "schedule": 60},
    "status-windows-check": {"task": "comms.status_windows_check", "schedule": 60},
    # The reminder an hour before a shown window; daily uptime rows from the health samples.
    "status-reminders-send": {"task": "comms.status_reminders_send", "schedule": 60},
    "status-uptime-rollup": {
        "task": "comms.status_uptime_rollup",
        "schedule": env_int("MYCELIA_UPTIME_ROLLUP_SECONDS", 300),
    },
    "status-health-refresh": {
        "task": "upgrades.status_health_refresh",
        "schedule": env_int("MYCELIA_STATUS_REFRESH_SECONDS", 60),
    },
    "flag-evaluation-counts-flush": {
        "task": "flags.tasks.flag_evaluation_counts_flush_task",
        "schedule": 60,
    },
}
# The monitoring phase: window length, sampling interval, and failures in a row that trip the
# guard (which rolls a feature flag back by itself).
MYCELIA_MONITORING_HOURS = float(env_str("MYCELIA_MONITORING_HOURS", "24"))
MYCELIA_MONITORING_INTERVAL_SECONDS = env_int("MYCELIA_MONITORING_INTERVAL_SECONDS", 300)
MYCELIA_GUARD_FAILURE_LIMIT = env_int("MYCELIA_GUARD_FAILURE_LIMIT", 3)
# A review not done this long after it fell due gets a second, "overdue" reminder.
MYCELIA_REVIEW_OVERDUE_AFTER = timedelta(hours=env_int("MYCELIA_REVIEW_OVERDUE_HOURS", 24))
# Where people reach this panel, for links in mails.
MYCELIA_BASE_URL = env_str("MYCELIA_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# A running run whose worker has not marked it alive for this long goes back to the queue.
MYCELIA_RUN_STALE_SECONDS = env_int("MYCELIA_RUN_STALE_SECONDS", 60)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 300)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 360)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "mycelia-ops",
    }
}

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "mycelia-ops@localhost")
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(DATA_DIR / "mail"))
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}

# Feature flags: the environment a flip or an evaluation means when none is named.
FLAGS_DEFAULT_ENVIRONMENT = env_str("FLAGS_DEFAULT_ENVIRONMENT", "production")

# The stakeholder status page: public, or only for signed-in viewers.
STATUS_PAGE_PUBLIC = env_bool("STATUS_PAGE_PUBLIC", True)
STATUS_PAGE_NAME = env_str("STATUS_PAGE_NAME", "Mycelia")

# Rows per page on long lists.
PAGE_SIZE = env_int("MYCELIA_PAGE_SIZE", 25)

# Sign-in with OpenID Connect (mozilla-django-oidc; docs/oidc.md). Off unless OIDC_ISSUER is set,
# and then nothing changes: the embedded default keeps local accounts only. The provider's
# endpoints come from <issuer>/.well-known/openid-configuration on first use, never at import.
OIDC_ROLES = ("administrators", "release_managers", "stakeholders")


def _oidc_role_groups(raw: str) -> dict[str, list[str]]:
    """'administrators=ops-admins;release_managers=release-team,sre' -> {role: [group, ...]}."""
    mapping: dict[str, list[str]] = {}
    for part in (part.strip() for part in raw.split(";")):
        if not part:
            continue
        role, sep, groups = part.partition("=")
        names = [name.strip() for name in groups.split(",") if name.strip()]
        if not sep or role.strip() not in OIDC_ROLES or not names:
            raise ImproperlyConfigured(
                f"OIDC_ROLE_GROUPS: {part!r} is not ROLE=GROUP[,GROUP...] with a ROLE of "
                + ", ".join(OIDC_ROLES)
            )
        mapping[role.strip()] = names
    return mapping


OIDC_ISSUER = (env_str("OIDC_ISSUER", "") or "").strip().rstrip("/")
OIDC_RP_CLIENT_ID = env_str("OIDC_CLIENT_ID", "") or ""
OIDC_RP_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET", "") or ""  # or OIDC_CLIENT_SECRET_FILE
OIDC_RP_SCOPES = env_str("OIDC_SCOPES", "") or "openid email profile groups"
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "") or "groups"
OIDC_ROLE_GROUPS = _oidc_role_groups(env_str("OIDC_ROLE_GROUPS", "") or "")
OIDC_ACCESS_CONTACT = env_str("OIDC_ACCESS_CONTACT", "") or "your Mycelia Ops administrator"
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "") or (
    OIDC_ISSUER.split("//", 1)[-1].split("/", 1)[0] or "single sign-on"
)
OIDC_RP_SIGN_ALGO = env_str("OIDC_SIGN_ALGO", "") or "RS256"
OIDC_USE_PKCE = env_bool("OIDC_USE_PKCE", True)
OIDC_TOKEN_USE_BASIC_AUTH = env_bool("OIDC_TOKEN_USE_BASIC_AUTH", False)
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT_SECONDS", 10)
# A session is renewed with the provider (roles read again) once its ID token is this old.
OIDC_RENEW_ID_TOKEN_EXPIRY_SECONDS = env_int("OIDC_RENEW_SECONDS", 900)
OIDC_STORE_ID_TOKEN = True  # the id_token_hint that ends the provider's session at sign-out
OIDC_AUTHENTICATE_CLASS = "mycelia_ops.oidc.SignInStartView"
OIDC_CALLBACK_CLASS = "mycelia_ops.oidc.SignInCallbackView"
OIDC_OP_LOGOUT_URL_METHOD = "mycelia_ops.oidc.provider_logout_url"
# The sign-in lockout counts password guesses, not sign-ins the provider answered.
AXES_WHITELIST_CALLABLE = "mycelia_ops.oidc.axes_skips_provider_sign_in"
if OIDC_ISSUER:
    if not OIDC_ISSUER.startswith(("https://", "http://")):
        raise ImproperlyConfigured(f"OIDC_ISSUER must be a URL, not {OIDC_ISSUER!r}")
    if not (OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET):
        raise ImproperlyConfigured(
            "OIDC_ISSUER is set: OIDC_CLIENT_ID and OIDC_CLIENT_SECRET (or _FILE) are needed too"
        )
    if not OIDC_ROLE_GROUPS:
        raise ImproperlyConfigured(
            "OIDC_ISSUER is set: OIDC_ROLE_GROUPS must map at least one role to a group, e.g. "
            "release_managers=release-team;stakeholders=everyone"
        )
    AUTHENTICATION_BACKENDS.append("mycelia_ops.oidc.OIDCBackend")
    # Sign-out is a form post that the provider's end_session endpoint answers (form-action
    # covers where a form's redirects lead).
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"].append(
        "/".join(OIDC_ISSUER.split("/", 3)[:3])
    )
