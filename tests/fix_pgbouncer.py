"""A real PgBouncer in transaction pool mode in front of the test server."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import conninfo

from tests.fix_db import PgServer
from undecat.adapters.postgres.embedded import free_port

BOUNCER_PASSWORD = "bouncer-secret"


class Bouncer:
    """A running PgBouncer; :meth:`dsn_for` routes to any database of the server."""

    def __init__(self, port: int, user: str) -> None:
        self.port = port
        self.user = user

    def dsn_for(self, dbname: str, password: str = BOUNCER_PASSWORD) -> str:
        """A DSN through the bouncer."""
        return conninfo.make_conninfo(
            host="127.0.0.1", port=str(self.port), dbname=dbname, user=self.user, password=password
        )


def _binary() -> str:
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if found is None:
        raise RuntimeError(
            "pgbouncer is not installed: .ci/run installs it (apt-get install pgbouncer)"
        )
    return found


@pytest.fixture(scope="session")
def pgbouncer(pg_server: PgServer) -> Iterator[Bouncer]:
    """PgBouncer, ``pool_mode = transaction``, SCRAM auth like production."""
    with running_pgbouncer(pg_server.host, pg_server.port, pg_server.user, pg_server.password) as b:
        yield b


def running_pgbouncer_for(dsn: str) -> contextlib.AbstractContextManager[Bouncer]:
    """Run PgBouncer in front of the server of ``dsn`` (benchmarks)."""
    info = conninfo.conninfo_to_dict(dsn)
    return running_pgbouncer(
        str(info.get("host") or "127.0.0.1"),
        int(str(info.get("port") or 5432)),
        str(info.get("user") or "postgres"),
        str(info.get("password") or ""),
    )


@contextlib.contextmanager
def running_pgbouncer(host: str, port: int, user: str, password: str) -> Iterator[Bouncer]:
    """Run PgBouncer in front of ``host:port`` until the block ends (tests and benchmarks)."""
    server_port = port
    work = Path(tempfile.mkdtemp(prefix="undecat-bouncer-"))
    work.chmod(0o777)
    port = free_port()
    # The bouncer logs in to the server with the server's own password (or, on a trust
    # server, with any): the client-facing password is the bouncer's own.
    server_password = password or BOUNCER_PASSWORD
    (work / "users.txt").write_text(f'"{user}" "{BOUNCER_PASSWORD}"\n')
    (work / "pgbouncer.ini").write_text(
        f"""[databases]
* = host={host} port={server_port} user={user} password={server_password}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {work}/users.txt
pool_mode = transaction
max_client_conn = 200
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,options
logfile = {work}/pgbouncer.log
pidfile = {work}/pgbouncer.pid
"""
    )
    for path in work.iterdir():
        path.chmod(0o666)
    argv = [_binary(), str(work / "pgbouncer.ini")]
    if os.geteuid() == 0:
        argv[1:1] = ["-u", "nobody"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            log = work / "pgbouncer.log"
            raise RuntimeError(f"pgbouncer exited: {log.read_text() if log.exists() else ''}")
        time.sleep(0.05)
    try:
        yield Bouncer(port, user)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
