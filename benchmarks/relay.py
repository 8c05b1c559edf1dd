"""A userspace TCP relay that adds a fixed delay each way and counts round trips.

The kernel here has no ``netem``, so the private network between a host and PostgreSQL /
PgBouncer is imitated in userspace: every chunk read from one side is stamped with the time
it arrived and written to the other side at ``stamp + delay`` -- a fixed latency that does
not limit throughput (chunks in flight are queued, not serialised behind each other's
delay). One reader and one writer thread per direction per connection; ``time.sleep`` gives
sub-millisecond precision where an event loop would round its timers up to a millisecond.

It also counts **round trips**: a burst of bytes from the client that follows bytes from the
server (or opens the connection) is one round trip, however many TCP chunks or pipelined
statements it holds. That is the count that multiplies the network's latency, so the
benchmarks and the suite's round-trip test read it here rather than estimating it.

Use it in-process (:class:`LatencyRelay`, a context manager; the suite's counting test does)
or, for timing, in a process of its own so that its threads do not share the measured
process's GIL (:func:`relay_process`)::

    with relay_process("127.0.0.1", 5432, rtt_ms=0.5) as relay:
        dsn = relay.route(dsn)          # the same database, 0.5 ms round trip away
        ...                             # run the benchmark
        print(relay.round_trips())      # counted since the start or the last reset()

``route(dsn)`` rewrites a DSN's host and port to the relay's. :func:`calibrated_relay` does
the same but tunes the delay so that the *measured* round trip grows by the wanted amount.
Scraper benchmarks (availability upsert, sync to production) call these the same way, or
use the routes and the table of :mod:`benchmarks.bench_stages`.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

from psycopg import conninfo

__all__ = [
    "LatencyRelay",
    "RelayProcess",
    "calibrated_relay",
    "measured_rtt_ms",
    "relay_process",
    "route",
]

_CHUNK = 256 * 1024


def route(dsn: str, port: int, host: str = "127.0.0.1") -> str:
    """``dsn`` with its host and port replaced by ``host:port`` (the relay's)."""
    info = conninfo.conninfo_to_dict(dsn)
    info.update(host=host, port=str(port))
    return conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})


class _Counter:
    """Round trips over all connections: client bursts that follow server bytes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.round_trips = 0

    def add(self) -> None:
        with self._lock:
            self.round_trips += 1

    def take(self, reset: bool) -> int:
        with self._lock:
            value = self.round_trips
            if reset:
                self.round_trips = 0
            return value


class _Pair:
    """One client connection and its upstream connection, relayed both ways."""

    def __init__(self, client: socket.socket, upstream: socket.socket, relay: LatencyRelay):
        self.client = client
        self.upstream = upstream
        self.relay = relay
        self.server_spoke_last = True  # the client's first bytes open a round trip
        self._closed = threading.Event()

    def start(self) -> None:
        for source, target, from_client in (
            (self.client, self.upstream, True),
            (self.upstream, self.client, False),
        ):
            chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
            threading.Thread(
                target=self._read, args=(source, chunks, from_client), daemon=True
            ).start()
            threading.Thread(target=self._write, args=(target, chunks), daemon=True).start()

    def _read(
        self,
        source: socket.socket,
        chunks: queue.SimpleQueue[tuple[float, bytes]],
        from_client: bool,
    ) -> None:
        delay = self.relay.one_way
        try:
            while True:
                data = source.recv(_CHUNK)
                stamp = time.perf_counter()
                if not data:
                    break
                if from_client:
                    if self.server_spoke_last:
                        self.relay.counter.add()
                    self.server_spoke_last = False
                else:
                    self.server_spoke_last = True
                chunks.put((stamp + delay, data))
        except OSError:
            pass
        chunks.put((0.0, b""))

    def _write(self, target: socket.socket, chunks: queue.SimpleQueue[tuple[float, bytes]]) -> None:
        try:
            while True:
                due, data = chunks.get()
                if not data:
                    break
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                target.sendall(data)
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class LatencyRelay:
    """Relays 127.0.0.1:``port`` to ``host:upstream_port`` with ``rtt_ms`` / 2 added each way."""

    def __init__(self, host: str, upstream_port: int, *, rtt_ms: float = 0.0) -> None:
        self.host = host
        self.upstream_port = upstream_port
        self.one_way = rtt_ms / 2000.0
        self.counter = _Counter()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._pairs: list[_Pair] = []
        self._stopped = False
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> LatencyRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def route(self, dsn: str) -> str:
        """``dsn`` routed through this relay."""
        return route(dsn, self.port)

    def round_trips(self, *, reset: bool = False) -> int:
        """Round trips counted since the start (or the last reset)."""
        return self.counter.take(reset)

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection((self.host, self.upstream_port))
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(client, upstream, self)
            self._pairs.append(pair)
            pair.start()

    def stop(self) -> None:
        """Stop accepting and close every relayed connection."""
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.close()
        for pair in self._pairs:
            pair.close()


class RelayProcess:
    """A :class:`LatencyRelay` in a child process (``python -m benchmarks.relay``)."""

    def __init__(self, proc: subprocess.Popen[str], port: int, rtt_ms: float) -> None:
        self._proc = proc
        self.port = port
        self.rtt_ms = rtt_ms

    def route(self, dsn: str) -> str:
        """``dsn`` routed through the relay."""
        return route(dsn, self.port)

    def round_trips(self, *, reset: bool = False) -> int:
        """Round trips counted by the child since its start (or the last reset)."""
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write("reset\n" if reset else "count\n")
        self._proc.stdin.flush()
        return int(self._proc.stdout.readline())


@contextlib.contextmanager
def relay_process(host: str, port: int, *, rtt_ms: float) -> Iterator[RelayProcess]:
    """Run a relay to ``host:port`` adding ``rtt_ms`` per round trip, in its own process."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.relay", host, str(port), str(rtt_ms)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield RelayProcess(proc, int(proc.stdout.readline()), rtt_ms)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def calibrated_relay(dsn: str, *, rtt_ms: float = 0.5) -> Iterator[tuple[RelayProcess, float]]:
    """A relay in front of ``dsn``'s server adding about ``rtt_ms`` to each round trip.

    The relay's thread hand-offs and sleep overshoot add to its nominal delay (more on a
    loaded machine), so the delay is lowered until ``SELECT 1`` through it costs ``rtt_ms``
    more than straight to the server. Yields the relay and the added time it measured.
    """
    info = conninfo.conninfo_to_dict(dsn)
    host, port = str(info.get("host") or "127.0.0.1"), int(str(info.get("port") or 5432))
    direct = measured_rtt_ms(dsn)
    delay = rtt_ms
    attempts = 6
    with contextlib.ExitStack() as stack:
        for attempt in range(attempts):
            with contextlib.ExitStack() as trial:
                relay = trial.enter_context(relay_process(host, port, rtt_ms=delay))
                direct = min(direct, measured_rtt_ms(dsn))
                added = measured_rtt_ms(relay.route(dsn)) - direct
                if attempt == attempts - 1 or abs(added - rtt_ms) <= 0.04:
                    stack.enter_context(trial.pop_all())
                    break
                # Damped: one sample of a loaded machine may be off by a lot.
                delay = min(1.5 * rtt_ms, max(0.05, delay - 0.7 * (added - rtt_ms)))
        yield relay, added


def measured_rtt_ms(dsn: str, samples: int = 200) -> float:
    """The median time of ``SELECT 1`` on ``dsn``, in milliseconds (what a round trip costs)."""
    import statistics  # noqa: PLC0415

    import psycopg  # noqa: PLC0415

    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _serve(host: str, port: int, rtt_ms: float) -> None:
    with LatencyRelay(host, port, rtt_ms=rtt_ms) as relay:
        print(relay.port, flush=True)
        for line in sys.stdin:
            print(relay.round_trips(reset=line.strip() == "reset"), flush=True)


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
