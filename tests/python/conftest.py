"""Fixtures for the ractmq interoperability suite.

Every test gets its own broker process on a free loopback port (``broker``), or starts brokers with
custom flags (``broker_factory``). The binary is ``$RACTMQ_BIN`` or ``target/debug/ractmq`` relative
to the repository root; the suite never builds it. A failing test gets the broker's stderr attached
to its report. A broker that died during a test fails that test.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from mqtt_support import TIMEOUT, PahoClient, mqtt

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 15.0
_brokers_key = pytest.StashKey[list]()


def broker_binary() -> Path:
    env = os.environ.get("RACTMQ_BIN")
    return Path(env) if env else REPO_ROOT / "target" / "debug" / "ractmq"


def pytest_sessionstart(session):
    path = broker_binary()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise pytest.UsageError(
            f"ractmq binary not found at {path}: build it first (cargo build --bin ractmq) or set RACTMQ_BIN"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A running ``ractmq start`` process."""

    host = "127.0.0.1"

    def __init__(self, binary: Path, args: list[str], log_path: Path):
        self.binary = binary
        self.args = args
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.stopped = False
        self.data_dir = Path(tempfile.mkdtemp(prefix="ractmq-data-"))

    @property
    def addr(self) -> tuple[str, int]:
        return self.host, self.port

    def start(self) -> "Broker":
        last_error = ""
        for _attempt in range(3):  # another process may grab the free port between probe and bind
            self.port = _free_port()
            cmd = [str(self.binary), "start", "--listen", f"{self.host}:{self.port}", "--api-listen", "127.0.0.1:0", *self.args]
            if not any(a in ("--data-dir", "--durability") for a in self.args):
                # Every node its own store, kept across its restarts, as on a real machine.
                cmd += ["--data-dir", str(self.data_dir)]
            env = dict(os.environ, NO_COLOR="1")
            env.setdefault("RUST_LOG", "info")
            with open(self.log_path, "ab") as log:
                log.write(f"$ {' '.join(cmd)}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            if self._wait_accepting():
                return self
            last_error = self.logs()[-2000:]
            self._terminate()
        raise RuntimeError(f"ractmq did not start accepting connections:\n{last_error}")

    def _wait_accepting(self, end: float | None = None) -> bool:
        """Until the broker accepts connections (True), exits, or `end` (default: the startup timeout) passes."""
        end = time.monotonic() + STARTUP_TIMEOUT if end is None else end
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(self.addr, timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.02)
        return False

    def api_addr(self) -> str:
        """Where the REST API listens, as the broker logged it (``host:port``)."""
        end = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < end:
            m = re.search(r"REST API listening on http://(\S+)", self.logs())
            if m:
                return m.group(1)
            time.sleep(0.02)
        raise RuntimeError(f"the broker did not say where its API listens:\n{self.logs()[-2000:]}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _terminate(self) -> int | None:
        p = self.proc
        if p is None or p.poll() is not None:
            return p.returncode if p else None
        p.send_signal(signal.SIGTERM)
        try:
            return p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait(5)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self._terminate()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@pytest.fixture
def broker_factory(request, tmp_path):
    """``start(*flags, sys_interval=1)`` starts one more broker for this test."""
    binary = broker_binary()
    started: list[Broker] = []
    request.node.stash[_brokers_key] = started

    def start(*flags: str, sys_interval: int = 1) -> Broker:
        args = ["--sys-interval", str(sys_interval), *flags]
        b = Broker(binary, args, tmp_path / f"ractmq-{len(started)}.log")
        started.append(b)
        return b.start()

    yield start

    # A broker the test stopped on purpose did not die.
    died = [b for b in started if not b.alive() and not b.stopped]
    for b in started:
        b.stop()
    if died:
        codes = ", ".join(f"port {b.port}: exit {b.proc.returncode}" for b in died)
        pytest.fail(f"the broker exited during the test ({codes})", pytrace=False)


@pytest.fixture
def broker(broker_factory) -> Broker:
    return broker_factory()


@pytest.fixture
def clients(request):
    """``clients(client_id, protocol=..., **kw)`` makes PahoClients for ``broker``; all closed at teardown."""
    made: list[PahoClient] = []

    def make(client_id: str = "", protocol: int = mqtt.MQTTv311, target: Broker | None = None, **kwargs) -> PahoClient:
        b = target or request.getfixturevalue("broker")
        c = PahoClient(b.host, b.port, client_id=client_id, protocol=protocol, name=client_id, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for i, b in enumerate(item.stash.get(_brokers_key, [])):
            text = b.logs()
            if len(text) > 20000:
                text = "...\n" + text[-20000:]
            rep.sections.append((f"ractmq broker #{i} (port {b.port}) log, {rep.when}", text))


__all__ = ["Broker", "TIMEOUT"]
