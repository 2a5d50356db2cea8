"""
The chat server (`daphne shopbot.asgi:application`) as a child process on a loopback port, for
the benchmarks and tests that need a real server: one place that starts it, waits until it
answers and stops it.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def environment(**overrides: str) -> dict[str, str]:
    """This process's environment with the project's settings module and `overrides`."""
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "shopbot.settings", **overrides}


def server_environment(**overrides: str) -> dict[str, str]:
    """A server as production runs it, for tests and benchmarks: DEBUG off (a DEBUG server also
    logs every query and wraps every cursor, which benchmarks would measure), a throw-away
    secret key, no Claude, warnings only; then `overrides`."""
    return environment(
        **{
            "DEBUG": "0",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "ANTHROPIC_API_KEY": "",
            "LOG_LEVEL": "WARNING",
            **overrides,
        }
    )


def database_url(connection) -> str:
    """A DATABASE_URL for the database `connection` (a Django connection) uses, so a server
    process can share it (e.g. a test run's own database, on the embedded server's socket)."""
    params = connection.get_connection_params()
    name = connection.settings_dict["NAME"]
    host = params.get("host") or "127.0.0.1"
    port = f":{params['port']}" if params.get("port") else ""
    password = f":{quote(params['password'], safe='')}" if params.get("password") else ""
    user = quote(params.get("user") or "postgres", safe="")
    return f"postgresql://{user}{password}@{quote(host, safe='')}{port}/{name}"


class DaphneProcess:
    """daphne in a subprocess with exactly `env` as its environment, its output in `log`."""

    def __init__(self, env: dict[str, str], port: int | None = None, log: Path | None = None):
        self.env = env
        self.port = port or free_port()
        self.log = log or Path(tempfile.gettempdir()) / f"shopbot-daphne-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def launch(self) -> DaphneProcess:
        """Start it without waiting (several servers can then load the model side by side)."""
        from shopbot.management.commands.serve import daphne_options  # Django is set up by now

        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
                + [*daphne_options(), "shopbot.asgi:application"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        """Until /healthz answers 200 (the process may still be loading the model)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)  # polling a starting server; there is nothing to wait on instead
        self.stop()
        raise RuntimeError(f"daphne did not answer /healthz within {timeout} s:\n{self.log_tail()}")

    def start(self) -> DaphneProcess:
        self.launch().wait_ready()
        return self

    def stop(self, kill: bool = False) -> None:
        """Terminate it gracefully, or with kill=True the hard way (as a crash would look)."""
        if self.process is not None and self.process.poll() is None:
            if kill:
                self.process.send_signal(signal.SIGKILL)
            else:
                self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""
