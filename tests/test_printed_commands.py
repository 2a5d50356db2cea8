"""
Every command that README.md, the docs (docs/*.md) and `make run`'s output print works as printed,
on a fresh copy of the repository, in a shell where nobody has set anything (no DEBUG, no
SECRET_KEY).

The copy is made from the files git knows (tracked, or new and not ignored), with the shared .venv
symlinked in and the exported model copied (what `make install` leaves); the real `make run`
starts it (writing .env, a new embedded database, the demo shop, the admin user) and serves; then
each printed command runs in a subprocess against that same database while the server is up (two
at a time);
last, SIGTERM to `manage.py serve` stops it and its embedded PostgreSQL. One database and one
start-up for everything keeps it to a couple of minutes
(it is also `manage.py serve`'s test: a second fresh database and demo shop cost as much again).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from harness.daphne_process import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 240  # a new database, migrations, the demo shop's embeddings, the model
COMMAND_TIMEOUT = 120

# How each printed command is run: the arguments the README leaves to the reader (SHOP_ID,
# FILE...) filled in. A command printed but missing here fails the test, so nothing is skipped
# silently. None: not run, with the reason.
EVAL_SET = {
    "faqs": [
        {"id": "hours", "question": "What are your opening hours?", "answer": "9 to 6."},
        {"id": "returns", "question": "Can I return an item?", "answer": "Within 30 days."},
    ],
    "queries": [
        {"text": "when are you open", "gold": ["hours"]},
        {"text": "what is the capital of mongolia", "gold": []},
    ],
}


def commands(shop_id: str, files: Path) -> dict[str, list[list[str]] | None]:
    return {
        "changepassword": [["changepassword", "admin"]],  # the password comes on stdin
        "create_owner": [["create_owner", shop_id, "florence"]],
        "reembed": [["reembed"], ["reembed", "--shop", shop_id]],
        "export_model": [["export_model"]],  # the copy has the model: a no-op that says so
        "import_faqs": [["import_faqs", shop_id, str(files / "new.csv")]],
        "export_faqs": [
            ["export_faqs", shop_id],
            ["export_faqs", shop_id, "--format", "html", "-o", str(files / "faq.html")],
        ],
        "import_faq_page": [
            ["import_faq_page", shop_id, str(ROOT / "tests/faq_pages/headings.html"), "--dry-run"]
        ],
        "eval_retrieval": [["eval_retrieval", str(files / "eval.json"), "--json"]],
        "eval_grouping": [["eval_grouping", str(ROOT / "eval/unanswered_groups.json"), "--quiet"]],
        "purge_conversations": [["purge_conversations"], ["purge_conversations", "--dry-run"]],
        "forget_customer": [
            ["forget_customer", "ann@example.com", "--dry-run"],
            ["forget_customer", "+44 20 7946 0018", "--shop", shop_id],
        ],
        "export_customer": [
            ["export_customer", "ann@example.com"],
            ["export_customer", "ann@example.com", "--shop", shop_id, "-o", str(files / "a.json")],
        ],
        "send_handoff_emails": [["send_handoff_emails"]],
        "bench_chat": [["bench_chat", "--clients", "2", "--rounds", "1", "--think", "0"]],
        "migrate": [["migrate"]],
        "collectstatic": [["collectstatic", "--noinput"]],
        "check": [["check", "--deploy"]],
        # django-axes (admin login throttling): lifts lockouts; with none it has nothing to do.
        "axes_reset": [["axes_reset"]],
        "axes_reset_username": [["axes_reset_username", "admin"]],
        # The demo shop is loaded once: a second run leaves it as it is.
        "load_demo": [["load_demo"]],
        # What `make run` itself runs (make echoes it): it is the server this test started.
        "serve": None,
        # The background worker: `make run` started one beside the server; this one runs the
        # jobs due now and exits.
        "worker": [["worker", "--once"]],
        # Replies by email: run by an MTA with a message on stdin, and an SMTP server; both are
        # run as real processes by tests/test_email_replies.py.
        "receive_email": None,
        "mail_gateway": None,
        # Translators' commands (docs/languages.md): they rewrite locale/ and need gettext's
        # tools; tests/test_translations.py runs makemessages on a copy of the tree.
        "makemessages": None,
        "compilemessages": None,
    }


# The commands that create or delete shops (bench_chat's and eval_retrieval's own copies), write a
# shop's entries and vectors (`reembed` walks every shop) or migrate (bench_chat migrates too): one
# lane, one after another.
ONE_LANE = frozenset(
    {
        "reembed",
        "import_faqs",
        "worker",
        "bench_chat",
        "eval_retrieval",
        "eval_grouping",
        "load_demo",
        "migrate",
    }
)


def clean_environment(**extra: str) -> dict[str, str]:
    """What a new terminal has: no Django, ShopBot or test variable at all."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR", "USER")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **extra}


def fresh_copy(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to((ROOT / ".venv").resolve())
    # The shared venv is installed already: requirements older than its stamp, so make does not
    # reinstall (it would if the copies looked newer).
    for name in ("requirements.txt", "requirements-dev.txt"):
        os.utime(target / name, (0, 0))
    # Likewise the exported embedding model (`make test` exports it first): `make run` finds it and
    # does not export it again, which costs 11 CPU s of torch a run. The export itself is
    # tests/test_embedding_runtime.py's; with no model here (a bare pytest), `make run` exports.
    onnx = (ROOT / "var" / "onnx").resolve()
    if onnx.is_dir() and any(onnx.glob("model-*.onnx")):
        shutil.copytree(onnx, target / "var" / "onnx")


def printed_commands(text: str) -> list[str]:
    """The manage.py command names in a text, in order, once each."""
    names = re.findall(r"manage\.py ([a-z_]+)", text)
    return list(dict.fromkeys(names))


def test_every_printed_command_works_on_a_fresh_copy(tmp_path):
    # `make test` (and so CI) always has .venv; only a bare pytest from another environment
    # lacks the venv the copied repository links to.
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("needs the project's .venv")
    repo = tmp_path / "shopbot"
    repo.mkdir()
    fresh_copy(repo)
    assert not (repo / ".env").exists()
    port = free_port()
    env = clean_environment(PORT=str(port))

    server = subprocess.Popen(
        ["make", "run"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so the whole of it can be stopped
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(server.stdout), daemon=True)
    reader.start()
    try:
        wait_until_serving(server, port, output)
        printed = "".join(output)
        assert "Press Ctrl-C to stop." in printed
        assert f"Demo storefront:  http://127.0.0.1:{port}/" in printed
        # Every address it prints answers.
        for address in re.findall(r"^  [A-Z][\w ]+:\s+(http://\S+)$", printed, re.M):
            with urllib.request.urlopen(address, timeout=10) as response:
                assert response.status == 200, address
        assert f"http://127.0.0.1:{port}/faq/petal-stem/" in printed
        password = re.search(r"password: (\S+)", printed).group(1)
        # What `manage.py serve` prepared (it also had test_foundation's test of its own): the
        # demo shop on the storefront, its embed snippet, the admin.
        assert "Embed snippet" in printed
        assert f'src="http://127.0.0.1:{port}/widget.js" data-shop="pk_' in printed
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert "Petal" in response.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=10) as r:
            assert r.status == 200
        postmaster = int((repo / "var" / "pgdata" / "postmaster.pid").read_text().split()[0])

        env_file = (repo / ".env").read_text()
        assert "DEBUG=True" in env_file and re.search(r"SECRET_KEY=\S{40,}", env_file)

        files = tmp_path / "files"
        files.mkdir()
        (files / "new.csv").write_text(
            "question,answer\nDo you sell gift cards?,Yes: $25 and $50 in the shop.\n"
        )
        (files / "eval.json").write_text(json.dumps(EVAL_SET))
        shop_id = run(
            repo,
            ["shell", "-v", "0", "-c", "from faq.models import Shop; print(Shop.objects.get().pk)"],
        )
        table = commands(shop_id.strip(), files)

        docs = [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]
        names = printed_commands("".join(path.read_text() for path in docs) + printed)
        assert {"changepassword", "reembed", "import_faqs", "create_owner"} <= set(names)
        missing = [name for name in names if name not in table]
        assert missing == [], f"printed but not covered by this test: {missing}"

        # Two lanes side by side, each in the printed order: a command is mostly a Python
        # start-up (1.2-2 s, of which well under 0.5 s its own work), so one lane's start-ups
        # overlap the other's waits. ONE_LANE's commands keep to one, so none of them runs beside
        # another.
        lanes: tuple[list, list] = ([], [])
        for name in names:
            for argv in table[name] or []:
                lanes[name not in ONE_LANE].append((name, argv))
        timings = {}

        def run_lane(lane: list) -> None:
            for name, argv in lane:
                started = time.monotonic()
                stdin = (
                    "new-long-password-42\nnew-long-password-42\n"
                    if name == "changepassword"
                    else None
                )
                run(repo, argv, stdin=stdin)
                timings[" ".join(argv[:2])] = round(time.monotonic() - started, 1)

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(run_lane, lanes))  # re-raises a lane's failure
        print("seconds per command:", timings)

        # The new admin password works, and so do the changes the commands made.
        check = (
            "from django.contrib.auth.models import User; from faq.models import FAQEntry; "
            "print(User.objects.get(username='admin').check_password('new-long-password-42'), "
            "FAQEntry.objects.filter(question='Do you sell gift cards?').count())"
        )
        assert run(repo, ["shell", "-v", "0", "-c", check]).split() == ["True", "1"]
        assert password != "new-long-password-42"
        assert "application/ld+json" in (files / "faq.html").read_text()

        # SIGTERM to the server process (not its group) stops it and the embedded PostgreSQL: a
        # clean shutdown removes the pid file, and the process is gone (or a zombie waiting for
        # init to reap it: pg_ctl daemonizes it).
        serve = next(
            p for p in psutil.Process(server.pid).children(recursive=True) if "serve" in p.cmdline()
        )
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        assert not (repo / "var" / "pgdata" / "postmaster.pid").exists()
        assert not psutil.pid_exists(postmaster) or (
            psutil.Process(postmaster).status() == psutil.STATUS_ZOMBIE
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        reader.join(timeout=5)


def wait_until_serving(server: subprocess.Popen, port: int, output: list[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail("make run exited:\n" + "".join(output)[-3000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            # Not listening yet: poll /healthz (the real readiness signal) until the deadline.
            time.sleep(0.2)
    pytest.fail("make run did not serve in time:\n" + "".join(output)[-3000:])


def run(repo: Path, argv: list[str], stdin: str | None = None) -> str:
    """`.venv/bin/python manage.py ARGV` as printed, in a clean environment; its output."""
    result = subprocess.run(
        [".venv/bin/python", "manage.py", *argv],
        cwd=repo,
        env=clean_environment(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        # No terminal: changepassword's getpass then reads the password from standard input.
        start_new_session=True,
    )
    assert result.returncode == 0, f"manage.py {' '.join(argv)}:\n{result.stderr[-3000:]}"
    return result.stdout
