"""
`python -m shopbot.envfile [PATH]`: write the local .env that `make run` creates on its first run.

DEBUG on and a freshly generated SECRET_KEY, so that every command the README prints
(`manage.py changepassword admin`, `reembed`, ...) works in a plain shell afterwards. An existing
file is never touched: it may hold the developer's own settings. `.env.example` lists them all.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

TEMPLATE = """\
# Written by `make run` on its first run, for this checkout only (git ignores it); never
# overwritten. Real environment variables win over these lines. Every setting, with its default,
# is in .env.example. In production set SECRET_KEY and friends in the environment instead.
DEBUG=True
SECRET_KEY={key}
"""


def write_env_file(path: Path) -> bool:
    """Create `path` with DEBUG on and a new secret key, unless it exists. True if written."""
    try:
        # "x": fails if the file exists, so a second run (or a race with another) never overwrites.
        with open(path, "x") as f:
            f.write(TEMPLATE.format(key=secrets.token_urlsafe(50)))
    except FileExistsError:
        return False
    path.chmod(0o600)
    return True


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else ".env")
    if write_env_file(target):
        print(f"Wrote {target} (DEBUG on, a generated SECRET_KEY); edit it or see .env.example.")
