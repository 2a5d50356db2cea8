"""Settings for the test suite: the real settings, with a throwaway secret key, quick password
hashes, and the test process's commits not waiting for the disk (below).

Everything else (the database, the model, the channel layer) stays exactly as a host would run it.
"""

import os

# Never a developer's .env: the suite runs on the environment it is given.
os.environ["SHOPBOT_ENV_FILE"] = ""
os.environ.setdefault("SECRET_KEY", "insecure-key-for-tests-only")
# Background jobs run at commit in the process that queued them, so an edit is embedded before
# the test's next line; tests of the worker itself (tests/test_worker.py) turn this off.
os.environ.setdefault("JOBS_AT_COMMIT", "True")

from django.contrib.auth.hashers import PBKDF2PasswordHasher

from shopbot.settings import *  # noqa: F403


class QuickPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """Django's PBKDF2-SHA256 at 1,000 iterations instead of its default 1,000,000 (0.6 s of a
    core a hash, about a hundred hashes a run). The hashes keep the "pbkdf2_sha256" name, so a
    server process on the real settings still checks them (PBKDF2 reads the count from the hash);
    the validators, the login throttling and every password check run as in production."""

    iterations = 1_000


PASSWORD_HASHERS = ["shopbot.test_settings.QuickPBKDF2PasswordHasher"]

# The test process's own sessions commit without waiting for the WAL to reach the disk
# (synchronous_commit=off, a per-session setting: the server, the servers and commands the tests
# start, and every other session are as configured). What a commit shows to other sessions, and
# when, is unchanged; only a crash of PostgreSQL itself could lose the last commits of a test
# database that is thrown away anyway. The suite commits thousands of times (transactional tests,
# their table flushes, jobs at commit), each a wait on a disk the machine's other work shares.
DATABASES["default"]["OPTIONS"]["options"] = "-c synchronous_commit=off"  # noqa: F405
