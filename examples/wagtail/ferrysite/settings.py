"""A minimal Wagtail site for Ferry's integration test (examples/wagtail).

The database comes from FERRY_WAGTAIL_DB, so one code base serves every
environment:

    FERRY_WAGTAIL_DB=sqlite:////abs/path/staging.db
    FERRY_WAGTAIL_DB=postgres://postgres@127.0.0.1:5432/wagtail_staging

FERRY_WAGTAIL_EXTRA_APPS (comma-separated) puts more apps first in
INSTALLED_APPS: their content types are created first, so every content
type id differs from an environment migrated without them.
"""

import os
from urllib.parse import unquote, urlparse

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SECRET_KEY = "ferry-wagtail-example-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]

EXTRA_APPS = [a for a in os.environ.get("FERRY_WAGTAIL_EXTRA_APPS", "").split(",") if a]

INSTALLED_APPS = EXTRA_APPS + [
    "home",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "django_filters",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ferrysite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database(url):
    if not url:
        raise SystemExit("FERRY_WAGTAIL_DB is not set: sqlite:////abs/path.db or postgres://user@host:port/name")
    u = urlparse(url)
    if u.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(u.path)}
    if u.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(u.path.lstrip("/")),
            "USER": unquote(u.username or ""),
            "PASSWORD": unquote(u.password or ""),
            "HOST": u.hostname or "",
            "PORT": str(u.port or ""),
        }
    raise SystemExit(f"FERRY_WAGTAIL_DB: unsupported scheme {u.scheme!r}")


DATABASES = {"default": _database(os.environ.get("FERRY_WAGTAIL_DB"))}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = os.path.join(BASE_DIR, "static")
MEDIA_ROOT = os.path.join(BASE_DIR, "media")
MEDIA_URL = "/media/"

WAGTAIL_SITE_NAME = "Ferry example"
WAGTAILADMIN_BASE_URL = "http://localhost"
# The database search backend: `update_index` fills its tables.
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}
# Test speed: a cheap password hasher.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
