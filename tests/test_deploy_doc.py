"""The deploy guide's commands run as written, its names exist, and no command shows a secret.

``test_the_guide_runs_in_order`` runs the ``bash`` blocks of docs/deploy.md one after the
other, as a new operator would, in a scratch folder linked to the checkout's ``examples/``
and ``deploy/``: against a PostgreSQL server started fresh for it (no database, no roles), a
real PgBouncer whose ``auth_file`` is the one the guide writes, and the suite's S3 server,
proxy and fake Zara. The guide's placeholders are four shell variables (``PG_ADMIN_URL``,
``STAGING_SERVER``, ``STAGING_BOUNCER``, ``STAGING_OWNER_PASSWORD``), which the test sets.

A block preceded by ``<!-- not run here: REASON -->`` is skipped (it needs root, systemd as
PID 1 or a real deployment); where the later blocks depend on what it does, the test does
the same by its own means (``STAND_INS``), and it does the one manual step, filling in the
hosts' ``.env`` files, with its services' values. A block preceded by ``<!-- needs: PROGRAM
-->`` is skipped when a program is missing.

The release install of section 3 runs without root and offline: the test builds the wheel
into the scratch folder's ``dist/`` (``--no-build-isolation``), points ``UNDE_ROOT`` at a
folder of its own, puts on ``PATH`` a ``sudo`` that only runs its arguments, and sets
``PYTHONPATH`` to a folder of links to the suite's installed dependencies (not undecat,
not pip) and ``PIP_NO_INDEX=1``: pip finds every dependency already there and installs only
the wheel. The installed entry point then reports the built version and runs one job.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import psycopg
import pytest

from tests.fix_proxy import ProxyServer
from tests.fix_s3 import SeaweedS3
from tests.fix_zara import ZaraServer, store_entry
from tests.strategies import zara_item
from undecat.adapters.postgres.embedded import EmbeddedPostgres, _bin_dir, free_port
from undecat.bootstrap import HOST_JOBS

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "docs" / "deploy.md"
# Every page an operator follows: names in them must exist, and no block may show a secret.
PAGES = tuple(
    ROOT / p
    for p in (
        "README.md",
        "docs/deploy.md",
        "docs/runbook.md",
        "docs/operations.md",
        "docs/upgrade.md",
        "docs/security.md",
    )
)
SHELLS = frozenset({"bash", "sh", "shell", "console"})
COMMANDS = SHELLS | {"sql", "psql"}

_FENCE = re.compile(r"^\s*```(\w*)\s*$")
_MARK = re.compile(r"^<!--\s*(not run here|needs):\s*(.*?)\s*-->$")

# The hosts as the guide names them (folders, units, users, example files), and their roles.
UNITS = {host.replace("_", "-"): host for host in HOST_JOBS}
ROLES = {
    "apify": "apify",
    "photo-downloader": "downloader",
    "collage": "collage",
    "ximilar-sync": "ximilar",
    "scraper": "scraper",
}


@attrs.frozen
class Block:
    """One fenced block of a page and the marker comment before it, if any."""

    page: str
    line: int
    language: str
    text: str
    marker: tuple[str, str] | None

    @property
    def name(self) -> str:
        """``page:line`` for test ids."""
        return f"{self.page}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, with the marker on the last non-blank line before it."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    previous = ""
    n = 0
    while n < len(lines):
        fence = _FENCE.match(lines[n])
        if fence is None:
            if lines[n].strip():
                previous = lines[n].strip()
            n += 1
            continue
        indent = lines[n][: len(lines[n]) - len(lines[n].lstrip())]
        end = n + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        mark = _MARK.match(previous)
        body = [line.removeprefix(indent) for line in lines[n + 1 : end]]
        found.append(
            Block(
                page=page.name,
                line=n + 1,
                language=fence.group(1).lower(),
                text="\n".join(body) + "\n",
                marker=(mark.group(1), mark.group(2)) if mark else None,
            )
        )
        previous = ""
        n = end + 1
    return found


ALL = [b for page in PAGES for b in blocks(page)]
COMMAND_BLOCKS = [b for b in ALL if b.language in COMMANDS]
GUIDE = [b for b in blocks(DEPLOY) if b.language in COMMANDS]


def test_the_guide_has_command_blocks_that_run() -> None:
    """The guide is read at all: it has command blocks, and some of them run here."""
    assert GUIDE
    assert sum(b.marker is None and b.language in SHELLS for b in GUIDE) >= 5


@pytest.mark.parametrize("block", COMMAND_BLOCKS, ids=lambda b: b.name)
def test_no_command_puts_a_secret_on_a_command_line(block: Block) -> None:
    """No block expands an env file into arguments (readable in /proc, logged by sudo)."""
    assert not re.search(r"\$\(\s*cat\b[^)]*\.env|\.env\s*\|\s*xargs|`cat [^`]*\.env", block.text)
    assert not re.search(r"echo\s+'?\w*(PASSWORD|TOKEN|SECRET|WEBHOOK)\w*=", block.text)
    assert not re.search(
        r"(?i)(password|token|secret)=(?![\"']?\$)\S*[^.\s]{3,}", block.text.replace("'...'", "")
    )


@pytest.mark.parametrize("block", GUIDE, ids=lambda b: b.name)
def test_every_guide_block_runs_or_says_why_not(block: Block) -> None:
    """A command block of the guide that does not run here carries a reason; SQL is marked."""
    if block.marker is not None:
        assert block.marker[1], f"{block.name}: the marker gives no reason"
    else:
        assert block.language in SHELLS, f"{block.name}: a {block.language} block must be marked"


# --- every name the pages mention exists --------------------------------------------------


def _text() -> str:
    return "\n".join(page.read_text() for page in PAGES)


def _entry_points() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(project["scripts"])


def test_every_file_the_pages_name_exists() -> None:
    """Each ``deploy/systemd/...`` and ``examples/env/...`` path in the pages is in the checkout."""
    # A name with a glob or a variable in it (``undecat-*@.service``, ``$unit.env``) is a pattern.
    found = re.findall(r"\b((?:deploy/systemd|examples/env)/[\w@.-]*\w)(?![\w@.*$<\[-])", _text())
    paths = set(found)
    assert paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"named in the docs but not in the checkout: {missing}"


def test_every_unit_timer_and_command_the_pages_name_exists() -> None:
    """Each ``undecat-...`` name is an entry point, a host's user, a unit or a timer we ship."""
    units = ROOT / "deploy" / "systemd"
    timers = {p.name.removesuffix(".timer") for p in units.glob("*.timer")}
    known = _entry_points() | {f"undecat-{u}" for u in UNITS} | {"undecat-failure"} | timers
    # The brand a page adds as an example (operations.md, "Adding a brand") brings its timer.
    known |= {"undecat-apify-apify-lefties"}
    wrong = []
    for name, job in re.findall(r"\b(undecat-[a-z][a-z_-]*[a-z])(?:@([a-z_]+|%n|%i))?", _text()):
        if name not in known:
            wrong.append(name)
        elif job and job not in {"%n", "%i", "test"}:
            host = UNITS.get(name.removeprefix("undecat-"))
            if host is None or job not in HOST_JOBS[host]:
                wrong.append(f"{name}@{job}")
    assert not wrong, f"no such entry point, unit, user or timer: {sorted(set(wrong))}"


def test_every_host_folder_the_pages_name_is_a_units() -> None:
    """``/opt/unde/<x>`` is a host's folder (spelled like its units), a release or a shared file."""
    shared = {"venv", "releases", "objects", "failure.env"}
    folders = set(re.findall(r"/opt/unde/([\w.-]+)", _text()))
    assert folders & set(UNITS)
    wrong = sorted(f for f in folders - shared if f not in UNITS)
    assert not wrong, f"/opt/unde/{wrong[0]} is not a host's folder ({', '.join(UNITS)})"


def test_the_units_and_examples_spell_each_host_one_way() -> None:
    """Each host's units, user, folder, log tag and example .env all use the same spelling."""
    for unit in UNITS:
        service = (ROOT / "deploy" / "systemd" / f"undecat-{unit}@.service").read_text()
        assert f"User=undecat-{unit}\n" in service
        assert f"EnvironmentFile=/opt/unde/{unit}/.env\n" in service
        assert f"SyslogIdentifier=undecat-{unit}-%i\n" in service
        example = (ROOT / "examples" / "env" / f"{unit}.env").read_text()
        assert example.startswith(f"# /opt/unde/{unit}/.env ")
        assert f"DATA_DIR=/opt/unde/{unit}/data\n" in example


@pytest.mark.parametrize("spelling", ["photo-downloader", "photo_downloader"])
def test_the_cli_takes_the_hosts_one_spelling(spelling: str) -> None:
    """``undecat run`` knows ``photo-downloader`` (the guide's name) as well as the module's."""
    undecat = Path(sys.executable).parent / "undecat"
    result = subprocess.run(
        [str(undecat), "run", spelling, "nojob"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")},
    )
    assert result.returncode == 2
    assert "unknown job 'nojob' for photo_downloader" in result.stderr


def test_every_staging_migration_in_the_pages_runs_as_the_owner() -> None:
    """No page migrates as a host's role; README's command is the one the guide runs here."""
    roles = "|".join(ROLES.values()) + "|reporter"
    for block in COMMAND_BLOCKS:
        if "undecat migrate" in block.text:
            assert not re.search(rf"postgresql://({roles}):", block.text), block.name
    migrate = next(b.text for b in GUIDE if "undecat migrate --database staging" in b.text)
    assert migrate in (ROOT / "README.md").read_text()


# --- the guide, run in order ---------------------------------------------------------------


# What the release install must not take from the suite's site-packages: undecat itself (the
# wheel installs it) and the installer (the new virtualenv brings its own pip).
NOT_A_DEPENDENCY = re.compile(
    r"(undecat|__editable__|pip|setuptools|_distutils_hack|pkg_resources|wheel)([-_.].*)?$"
    r"|.*\.pth$"
)


def _dependencies(folder: Path) -> Path:
    """A folder of links to the suite's installed packages, undecat and pip left out."""
    folder.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        if not NOT_A_DEPENDENCY.match(entry.name) and entry.name != "__pycache__":
            (folder / entry.name).symlink_to(entry.resolve())
    return folder


def _sudo(folder: Path) -> Path:
    """A ``sudo`` that runs its arguments as the test's user (the test owns ``UNDE_ROOT``)."""
    folder.mkdir()
    sudo = folder / "sudo"
    sudo.write_text('#!/bin/sh\nexec "$@"\n')
    sudo.chmod(0o755)
    return folder


def _build_wheel(dist: Path) -> str:
    """The release's wheel in ``dist/``, built offline; returns its version."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--disable-pip-version-check",
            "-q",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("undecat-*-py3-none-any.whl")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert wheel.name == f"undecat-{version}-py3-none-any.whl"
    return str(version)


@attrs.define
class Trial:
    """The scratch folder, the environment the blocks see, and the services behind them."""

    work: Path
    env: dict[str, str]
    server: EmbeddedPostgres
    bouncer_port: int
    s3: SeaweedS3
    bucket: str
    proxy: ProxyServer
    zara: ZaraServer
    unde_root: Path
    version: str
    bouncer: subprocess.Popen[bytes] | None = None
    bouncer_dir: Path | None = None

    def urls(self) -> dict[str, str]:
        """``staging-urls.txt`` as the guide's roles block wrote it: role -> URL."""
        lines = (self.work / "staging-urls.txt").read_text().splitlines()
        return dict(line.split(" ", 1) for line in lines)


def _start_bouncer(trial: Trial) -> None:
    """Stand-in for installing the guide's userlist.txt into PgBouncer and reloading it."""
    work = Path(tempfile.mkdtemp(prefix="undecat-doc-bouncer-"))
    work.chmod(0o777)
    (work / "userlist.txt").write_text((trial.work / "userlist.txt").read_text())
    (work / "pgbouncer.ini").write_text(
        f"""[databases]
unde_staging = host=127.0.0.1 port={trial.server.port} dbname=unde_staging

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {trial.bouncer_port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {work}/userlist.txt
pool_mode = transaction
ignore_startup_parameters = extra_float_digits,options
logfile = {work}/pgbouncer.log
pidfile = {work}/pgbouncer.pid
"""
    )
    for path in work.iterdir():
        path.chmod(0o666)
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    argv = [binary, str(work / "pgbouncer.ini")]
    if os.geteuid() == 0:
        argv[1:1] = ["-u", "nobody"]
    trial.bouncer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trial.bouncer_dir = work
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(trial.urls()["reporter"], connect_timeout=2):
                return
        except psycopg.OperationalError:
            if trial.bouncer.poll() is not None:
                break
            time.sleep(0.1)
    log = work / "pgbouncer.log"
    raise AssertionError(f"PgBouncer did not accept: {log.read_text() if log.exists() else ''}")


def _use_reporter(trial: Trial) -> None:
    """Stand-in for typing the reporter's URL at the prompt."""
    trial.env["STAGING_DB_URL"] = trial.urls()["reporter"]


# Placeholders an example .env may hold; after the test's edit none may be left.
PLACEHOLDER = re.compile(r"CHANGE_ME|PROXY_USER|\.example\b|\.internal\b|/opt/unde|api\.ximilar")


def _fill_in_env_files(trial: Trial) -> None:
    """The guide's manual step: each host's .env gets its role's URL and the test's services."""
    urls = trial.urls()
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: proves the job never calls it
    s3 = {
        "S3_ENDPOINT": trial.s3.endpoint,
        "S3_ACCESS_KEY": trial.s3.access_key,
        "S3_SECRET_KEY": trial.s3.secret_key,
        "S3_BUCKET": trial.bucket,
        "S3_PUBLIC_BASE_URL": f"{trial.s3.endpoint}/{trial.bucket}",
    }
    values: dict[str, dict[str, str]] = {
        "apify": {"APIFY_TOKEN": "not-used-with-from-file", "APIFY_API_URL": dead},
        "photo-downloader": {**s3, "PROXY_URL": trial.proxy.url},
        "collage": s3,
        "ximilar-sync": {"XIMILAR_API_URL": dead, "S3_PUBLIC_BASE_URL": s3["S3_PUBLIC_BASE_URL"]},
        "scraper": {
            "PRODUCTION_DB_URL": f"postgresql://undeuser:unused@127.0.0.1:{free_port()}/unde_main",
            "ZARA_BASE_URL": trial.zara.base_url(),
        },
    }
    for unit, role in ROLES.items():
        path = trial.work / "env" / f"{unit}.env"
        wanted = {"STAGING_DB_URL": urls[role], **values[unit]}
        lines = []
        for line in path.read_text().splitlines():
            key = line.partition("=")[0]
            edited = not line.startswith("#") and key in wanted
            lines.append(f"{key}={wanted.pop(key)}" if edited else line)
        lines += [f"{key}={value}" for key, value in wanted.items()]  # the fakes' addresses
        # DATA_DIR stays the host's: the guide's trial runs set their own.
        settings = [line for line in lines if line and line[0] != "#" and "DATA_DIR=" not in line]
        left = [line for line in settings if PLACEHOLDER.search(line)]
        assert not left, f"examples/env/{unit}.env: placeholders the guide did not mention: {left}"
        path.write_text("\n".join(lines) + "\n")


# Not-run blocks whose effect later blocks need (matched by a line of the block), and the
# manual step after a block (matched the same way).
STAND_INS: dict[str, Callable[[Trial], None]] = {
    "/etc/pgbouncer/userlist.txt": _start_bouncer,
    "read -rs -p 'reporter URL: '": _use_reporter,
}
AFTER: dict[str, Callable[[Trial], None]] = {
    'install -m 0600 "examples/env/$unit.env"': _fill_in_env_files,
}


@pytest.fixture(scope="module")
def fresh_server() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server with nothing on it: no unde_staging, no owner, no host roles."""
    server = EmbeddedPostgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def trial(
    fresh_server: EmbeddedPostgres,
    s3_server: SeaweedS3,
    proxy_server: ProxyServer,
    zara: ZaraServer,
    tmp_path: Path,
) -> Iterator[Trial]:
    """The scratch folder and the variables the guide's blocks use, set to local services."""
    work = tmp_path / "operator"
    work.mkdir()
    for name in ("examples", "deploy"):
        (work / name).symlink_to(ROOT / name)
    export = [zara_item(n) for n in (700001, 700002, 700003)]
    (work / "zara-export.json").write_text(json.dumps(export), encoding="utf-8")
    zara.fake.stores = [store_entry(1236), store_entry(1240)]
    version = _build_wheel(work / "dist")
    bouncer_port = free_port()
    path = [
        str(_sudo(tmp_path / "tools")),
        str(Path(sys.executable).parent),
        str(_bin_dir()),
        os.environ.get("PATH", ""),
    ]
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("PG", "STAGING_", "S3_", "PROXY_", "XIMILAR_", "APIFY_", "PIP_", "PYTHON", "UNDE_")
        )
    }
    unde_root = tmp_path / "unde"
    env |= {
        "UNDE_ROOT": str(unde_root),
        "PYTHONPATH": str(_dependencies(tmp_path / "dependencies")),
        "PIP_NO_INDEX": "1",
        # Were the index asked all the same, it would be a local port where nothing listens.
        "PIP_INDEX_URL": f"http://127.0.0.1:{free_port()}/simple",
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PATH": os.pathsep.join(path),
        "HOME": str(work),
        "PG_ADMIN_URL": fresh_server.dsn,
        "STAGING_SERVER": f"127.0.0.1:{fresh_server.port}",
        "STAGING_BOUNCER": f"127.0.0.1:{bouncer_port}",
        "STAGING_OWNER_PASSWORD": "0wner0f0unde0staging",
    }
    bucket = s3_server.create_bucket("doc")
    trial = Trial(
        work=work,
        env=env,
        server=fresh_server,
        bouncer_port=bouncer_port,
        s3=s3_server,
        bucket=bucket,
        proxy=proxy_server,
        zara=zara,
        unde_root=unde_root,
        version=version,
    )
    try:
        yield trial
    finally:
        if trial.bouncer is not None:
            trial.bouncer.send_signal(signal.SIGTERM)
            try:
                trial.bouncer.wait(10)
            except subprocess.TimeoutExpired:
                trial.bouncer.kill()
        if trial.bouncer_dir is not None:
            shutil.rmtree(trial.bouncer_dir, ignore_errors=True)
        s3_server.drop_bucket(bucket)


def _matching(table: dict[str, Callable[[Trial], None]], block: Block) -> list[str]:
    return [key for key in table if key in block.text]


def test_the_guide_runs_in_order(trial: Trial) -> None:
    """From a fresh server to one job of every host, each runnable block of the guide exits 0."""
    ran: list[str] = []
    for block in GUIDE:
        if block.marker is not None and block.marker[0] == "not run here":
            for key in _matching(STAND_INS, block):
                STAND_INS[key](trial)
            continue
        if block.marker is not None:
            missing = [p for p in block.marker[1].split() if shutil.which(p) is None]
            if missing:
                continue
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.text],
            cwd=trial.work,
            env=trial.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, (
            f"{block.name} exited {result.returncode}:\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}"
        )
        ran.append(block.name)
        for key in _matching(AFTER, block):
            AFTER[key](trial)
    assert trial.bouncer is not None, "the PgBouncer step was not found"
    assert "STAGING_DB_URL" in trial.env, "the reporter's prompt was not found"
    _check_the_release_runs(trial)
    _check_the_jobs_ran(trial)
    assert len(ran) >= 8, ran


def _installed(trial: Trial, command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` with bash in the scratch folder, as the guide's blocks run."""
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=trial.work,
        env=trial.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _check_the_release_runs(trial: Trial) -> None:
    """The guide installed the built wheel under ``UNDE_ROOT`` and its entry points run jobs."""
    release = trial.unde_root / "releases" / trial.version
    assert (trial.unde_root / "venv").is_symlink()
    assert (trial.unde_root / "venv").resolve() == release.resolve()
    venv = trial.unde_root / "venv" / "bin"
    for unit in UNITS:
        result = _installed(trial, f'"{venv}/undecat-{unit}" --version')
        assert (result.returncode, result.stdout.strip()) == (0, f"undecat {trial.version}")
    where = _installed(trial, f'"{venv}/python" -c "import undecat; print(undecat.__file__)"')
    assert Path(where.stdout.strip()).resolve().is_relative_to(release.resolve()), where
    # One job through the installed entry point, as the host's timer will start it.
    job = _installed(
        trial,
        f'set -a && . env/collage.env && DATA_DIR="$PWD/data/collage" && set +a\n'
        f'exec "{venv}/undecat-collage" cleanup_temp',
    )
    assert job.returncode == 0, f"{job.stdout[-3000:]}\n{job.stderr[-3000:]}"
    owner = (
        f"postgresql://unde_owner:{trial.env['STAGING_OWNER_PASSWORD']}"
        f"@{trial.env['STAGING_SERVER']}/unde_staging"
    )
    with psycopg.connect(owner) as conn:
        runs = conn.execute(
            "SELECT status FROM scraper_logs WHERE scraper_name = 'collage.cleanup_temp'"
            " ORDER BY id"
        ).fetchall()
    assert runs == [("success",), ("success",)], runs


def _check_the_jobs_ran(trial: Trial) -> None:
    """Every host's job left a run log written by its own role, through PgBouncer."""
    owner = (
        f"postgresql://unde_owner:{trial.env['STAGING_OWNER_PASSWORD']}"
        f"@{trial.env['STAGING_SERVER']}/unde_staging"
    )
    with psycopg.connect(owner) as conn:
        owner_of = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'unde_staging'"
        ).fetchone()
        tables = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        runs: dict[str, str] = dict(
            conn.execute("SELECT scraper_name, status FROM scraper_logs ORDER BY id").fetchall()
        )
        products = conn.execute("SELECT count(*) FROM raw_products").fetchone()
        stores = conn.execute("SELECT count(*) FROM raw_stores").fetchone()
    assert owner_of == ("unde_owner",)
    assert tables == [("unde_owner",)]
    jobs = (
        "apify_zara",
        "photo_downloader.retry_failed",
        "collage.cleanup_temp",
        "ximilar_sync",
        "stores_refresh",
    )
    assert {job: runs.get(job) for job in jobs} == dict.fromkeys(jobs, "success"), runs
    assert products == (3,)
    assert stores == (2,)
    # The trial runs kept their scratch files in the checkout's data/<unit>, not /opt/unde.
    assert sorted(p.name for p in (trial.work / "data").iterdir()) == sorted(ROLES)
