"""The benchmark runner runs end to end and prints its ratios (no timing is judged).

``python bench/run.py --quick --smoke`` starts the target, the gateway, ``ssgate
connect`` and two stunnel processes, moves a megabyte each way through every route,
times a few round trips, handshakes and logins, and stops everything.  This test pins
that it exits 0, prints every ratio line, reports no error logged by the gateway and
leaves no child process or temporary directory behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RATIO_LINES = (
    "ratio upload throughput: ssgate/stunnel ",
    "ratio download throughput: ssgate/stunnel ",
    "ratio p50 latency (lower is better): ssgate/stunnel ",
    "ratio p99 latency (lower is better): ssgate/stunnel ",
    "ratio logins/s: ssgate full logins / stunnel mutual-TLS handshakes ",
    "ratio handshakes/s: ssgate gateway / stunnel server ",
)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory: the gateway's Unix socket path must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="ssb-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if text in args:
            found.append(args)
    return found


def test_bench_smoke_prints_every_ratio_and_cleans_up(short_tmp: Path) -> None:
    """--quick --smoke: exit 0, every ratio line with a number, no gateway errors, no
    child process left and its temporary directory removed."""
    assert shutil.which("stunnel4") or shutil.which("stunnel"), "stunnel4 is installed by .ci/run"
    env = {k: v for k, v in os.environ.items() if k != "SSGATE_DEBUG"}
    env["TMPDIR"] = str(short_tmp)  # the runner's temporary directory goes here
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--smoke"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the runner stop its children and remove its directory.
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"bench did not finish within 240 s:\n{out}\n{err}")

    assert proc.returncode == 0, f"{out}\n{err}"
    assert "Traceback" not in err, err
    lines = out.splitlines()
    for prefix in RATIO_LINES:
        line = next((x for x in lines if x.startswith(prefix)), None)
        assert line is not None, f"no line starting {prefix!r} in:\n{out}"
        ratio = line.removeprefix(prefix).split()[0]
        assert ratio.replace(".", "", 1).isdigit(), line
    assert not [x for x in lines if x.startswith("warning:")], out
    assert processes_mentioning(str(short_tmp)) == []
    assert list(short_tmp.iterdir()) == [], "the runner left its temporary directory behind"


OFFICER_RATIO_LINES = (
    "ratio sessions list: page/store ",
    "ratio sessions list by source: page/store ",
    "ratio longest timeline: page/store ",
    "ratio typical timeline: page/store ",
    "ratio login failures: page/store ",
    "ratio login failures through audit.query / two-column query: ",
    "ratio charts: page/store ",
)


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_officer_bench_smoke_measures_every_page(db: str, short_tmp: Path) -> None:
    """``bench/run.py officer`` at 2,000 events: builds the data set (no cache),
    logs an officer in to the console, measures each page and its store function,
    prints every ratio and leaves no temporary directory behind (PostgreSQL: its schema is
    made in the test database and dropped)."""
    env = {k: v for k, v in os.environ.items() if k != "SSGATE_DEBUG"}
    env["TMPDIR"] = str(short_tmp)
    args = ["officer", "--db", db, "--events", "2000", "--no-cache"]
    args += ["--repeats", "3", "--warmup", "1", "--explain", "--pg-url", PG_ADMIN_URL]
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    for prefix in OFFICER_RATIO_LINES:
        line = next((x for x in lines if x.startswith(prefix)), None)
        assert line is not None, f"no line starting {prefix!r} in:\n{proc.stdout}"
        value = line.removeprefix(prefix)
        assert value == "not yet" or value.replace(".", "", 1).isdigit(), line
    assert list(short_tmp.iterdir()) == [], "the runner left its temporary directory behind"


RADIUS_RATIO = "ratio RADIUS Access-Requests/s / argon2id verifications/s "


def test_radius_bench_smoke_accepts_every_request_and_cleans_up(short_tmp: Path) -> None:
    """``bench/run.py radius --smoke``: ``ssgate serve`` with ``[radius]`` accepts every
    signed PAP Access-Request (password + code, one account each), the ratio to argon2id
    alone is printed as a number, nothing is logged as a warning or error, and no child
    process or temporary directory is left behind."""
    env = {k: v for k, v in os.environ.items() if k != "SSGATE_DEBUG"}
    env["TMPDIR"] = str(short_tmp)
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "radius", "--smoke"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    line = next((x for x in lines if x.startswith(RADIUS_RATIO)), None)
    assert line is not None, f"no line starting {RADIUS_RATIO!r} in:\n{proc.stdout}"
    assert line.removeprefix(RADIUS_RATIO).split()[0].replace(".", "", 1).isdigit(), line
    assert not [x for x in lines if x.startswith("warning:")], proc.stdout
    assert processes_mentioning(str(short_tmp)) == []
    assert list(short_tmp.iterdir()) == [], "the runner left its temporary directory behind"


PORTAL_PAGES = (
    "home /",
    "enrolments",
    "contributions (all)",
    "contributions 1 year",
    "contributions.csv (all)",
    "account (latest year)",
    "retirement",
    "declarations",
    "certificate form",
    "certificate PDF (30 years; incl. form)",
    "verify (no login)",
)


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_portal_bench_smoke_measures_every_page(db: str, short_tmp: Path) -> None:
    """``bench/run.py portal`` with a small data set: loads the person's 30 years of
    ledger, opens their account at the counter, logs in (password, code, password
    change), prints a median and p99 for every portal page, and leaves no temporary
    directory behind (PostgreSQL: its schema is made in the test database and dropped)."""
    env = {k: v for k, v in os.environ.items() if k != "SSGATE_DEBUG"}
    env["TMPDIR"] = str(short_tmp)
    args = ["portal", "--db", db, "--others", "20", "--repeats", "2", "--warmup", "0"]
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), *args, "--pg-url", PG_ADMIN_URL],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert "one person with 360 months (1800 ledger lines, 3 units)" in lines[0], lines[0]
    for name in PORTAL_PAGES:
        line = next((x for x in lines if x.startswith(f"{name} ")), None)
        assert line is not None, f"no line for {name!r} in:\n{proc.stdout}"
        median, p99 = line.removeprefix(name).split()[:2]
        assert float(median) > 0 and float(p99) >= float(median), line
    assert any(x.startswith("pages over 100 ms median: ") for x in lines), proc.stdout
    assert list(short_tmp.iterdir()) == [], "the runner left its temporary directory behind"
