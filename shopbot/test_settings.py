"""Settings for the test suite: the real settings, with a throwaway secret key.

Everything else (the database, the model, the channel layer) stays exactly as a host would run it.
"""

import os

os.environ.setdefault("SECRET_KEY", "insecure-key-for-tests-only")

from shopbot.settings import *  # noqa: F403
