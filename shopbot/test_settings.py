"""Settings for the test suite: the real settings, with a throwaway secret key.

Everything else (the database, the model, the channel layer) stays exactly as a host would run it.
"""

import os

# Never a developer's .env: the suite runs on the environment it is given.
os.environ["SHOPBOT_ENV_FILE"] = ""
os.environ.setdefault("SECRET_KEY", "insecure-key-for-tests-only")
# Background jobs run at commit in the process that queued them, so an edit is embedded before
# the test's next line; tests of the worker itself (tests/test_worker.py) turn this off.
os.environ.setdefault("JOBS_AT_COMMIT", "True")

from shopbot.settings import *  # noqa: F403
