"""A real forwarding HTTP proxy with basic auth: ``proxy.py`` from PyPI.

``proxy_server`` is one proxy for the session (plain forwarding for ``http://`` targets,
``CONNECT`` tunnels for ``https://``); a wrong password gets 407 from it, as from the
residential proxy in production. ``proxy_down`` is a proxy URL nobody listens on.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from undecat.adapters.postgres.embedded import free_port

PROXY_USER = "shopper"
PROXY_PASSWORD = "proxy-pass-s3cr3t"


@attrs.frozen
class ProxyServer:
    """A running proxy and the credentials it accepts."""

    port: int
    user: str = PROXY_USER
    password: str = PROXY_PASSWORD

    @property
    def url(self) -> str:
        """``PROXY_URL`` with the right credentials."""
        return self.url_with(self.password)

    def url_with(self, password: str) -> str:
        """``PROXY_URL`` with ``password`` (a wrong one gets 407)."""
        return f"http://{self.user}:{password}@127.0.0.1:{self.port}"


def start_proxy(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """Start proxy.py on ``port`` and wait until it accepts connections."""
    log = (workdir / "proxy.log").open("wb")
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "proxy",
                "--hostname",
                "127.0.0.1",
                "--port",
                str(port),
                "--basic-auth",
                f"{PROXY_USER}:{PROXY_PASSWORD}",
                "--num-workers",
                "2",
                "--log-level",
                "WARNING",
                "--pid-file",
                str(workdir / "proxy.pid"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    finally:
        log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = (workdir / "proxy.log").read_text(errors="replace")
            pytest.fail(f"proxy.py exited with {proc.returncode}:\n{text[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    stop_proxy(proc)
    pytest.fail("proxy.py did not start listening within 30 s")


def stop_proxy(proc: subprocess.Popen[bytes]) -> None:
    """Stop a proxy started by :func:`start_proxy`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="session")
def proxy_server() -> Iterator[ProxyServer]:
    """The proxy of this test session (basic auth required)."""
    with tempfile.TemporaryDirectory(prefix="undecat-proxy-") as folder:
        port = free_port()
        proc = start_proxy(Path(folder), port)
        try:
            yield ProxyServer(port)
        finally:
            stop_proxy(proc)


@pytest.fixture
def proxy_down() -> str:
    """A ``PROXY_URL`` on a port nobody listens on (connection refused at once)."""
    return f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{free_port()}"
