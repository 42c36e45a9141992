"""Every command block of README.md runs as written.

Each ```sh block is matched, line for line, to a runner below; a block the README gains without a runner here
fails the first test, so the two stay together. Commands run with three substitutions only: `ractmq` and
`cargo run --release --` are the binary under test ($RACTMQ_BIN, the binary `cargo run --release` builds),
every port the README names is a free port (and a default port a command leaves implicit is given through
the documented environment variables, or `-p` for the mosquitto clients), and file names are made in a
temporary directory. `scripts/test-all.sh` is not run from inside itself: `.ci/run` runs it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, broker_binary

README = REPO_ROOT / "README.md"
WAIT = 30.0


def sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Run:
    """Runs README lines with ports substituted, and stops what it started."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.ports: dict[str, int] = {}
        self.procs: list[subprocess.Popen] = []
        self.env = dict(os.environ, NO_COLOR="1", RUST_LOG="info")
        # The defaults a bare `ractmq start` and `ractmq ctl` use, moved to free ports.
        self.env["RACTMQ_MQTT__LISTEN"] = f"127.0.0.1:{self.port('1883')}"
        self.env["RACTMQ_API__LISTEN"] = f"127.0.0.1:{self.port('18083')}"
        self.env["RACTMQ_CTL_API"] = f"127.0.0.1:{self.port('18083')}"

    def port(self, readme_port: str) -> int:
        return self.ports.setdefault(readme_port, free_port())

    def substitute(self, line: str) -> str:
        line = line.split("  #")[0].rstrip()  # a trailing comment
        binary = shlex.quote(str(broker_binary()))
        line = line.replace("cargo run --release --", binary)
        line = re.sub(r"^ractmq ", binary + " ", line)
        line = re.sub(r"\b(1883|1884|1885|8883|8083|8084|4370|4371|4372|18083|18084|18085)\b",
                      lambda m: str(self.port(m.group(1))), line)
        line = line.rstrip("&").rstrip()
        if line.startswith("mosquitto_") and " -p " not in line:
            line += f" -p {self.port('1883')}"
        return line

    def background(self, line: str) -> subprocess.Popen:
        proc = subprocess.Popen(self.substitute(line), shell=True, cwd=self.tmp, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def run(self, line: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.substitute(line), shell=True, cwd=self.tmp, env=self.env, text=True,
                              capture_output=True, timeout=timeout)

    def wait_listening(self, readme_port: str, proc: subprocess.Popen) -> None:
        port = self.port(readme_port)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"exited {proc.returncode}: {proc.stdout.read()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nothing listens on {port} (README's {readme_port})")

    def read_until(self, proc: subprocess.Popen, wanted: str, retry=None) -> None:
        """Lines of `proc` until one is `wanted`; `retry` runs between reads (a publish, say)."""
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        seen, deadline = "", time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                seen += os.read(fd, 65536).decode()
            except BlockingIOError:
                pass
            if wanted in seen.splitlines():
                return
            if retry:
                retry()
            time.sleep(0.2)
        raise AssertionError(f"no line {wanted!r}; got {seen!r}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)


@pytest.fixture
def run(tmp_path):
    r = Run(tmp_path)
    yield r
    r.stop()


def lines(block: str) -> list[str]:
    return [l for l in block.splitlines() if l.strip()]


def quick_start_node(r: Run, block: list[str]) -> None:
    (start,) = block
    r.wait_listening("1883", r.background(start))


def ci_runs_the_test_command(r: Run, block: list[str]) -> None:
    (command,) = block
    assert command == "scripts/test-all.sh"
    assert "scripts/test-all.sh" in (REPO_ROOT / ".ci" / "run").read_text(), ".ci/run runs the README's command"


def running_a_node(r: Run, block: list[str]) -> None:
    with_flags, from_file, help_ = block
    r.wait_listening("1884", r.background(with_flags))
    r.stop()  # each line is another way to run the node, on the same API address
    defaults = re.search(r"# the same from a file: (.*)$", from_file).group(1)
    assert r.run(defaults).returncode == 0
    r.wait_listening("1883", r.background(from_file))
    shown = r.run(help_)
    assert shown.returncode == 0 and "--max-inflight" in shown.stdout


def tls_and_websocket(r: Run, block: list[str]) -> None:
    start, sub = block[0] + " " + block[1].strip(), block[2]
    start = start.replace("\\ ", "")
    make_certificates(r.tmp)
    node = r.background(start)
    for port in ("8883", "8083", "8084", "1883"):
        r.wait_listening(port, node)
    subscriber = r.background(sub)
    publish = "mosquitto_pub -h 127.0.0.1 -t sensors/1 -m 21"
    r.read_until(subscriber, "21", retry=lambda: r.run(publish))


def cluster_of_three(r: Run, block: list[str]) -> None:
    n1, n2, n3, brokers, sub, pub = block
    for line, port in ((n1, "1883"), (n2, "1884"), (n3, "1885")):
        r.wait_listening(port, r.background(line))
    r.read_until(r.background(brokers), "n1,n2,n3")
    subscriber = r.background(sub)
    r.read_until(subscriber, "21", retry=lambda: r.run(pub))


def first_run(r: Run, block: list[str]) -> None:
    start, sub, ctl = block
    r.wait_listening("1883", r.background(start))
    r.background(sub)
    deadline = time.monotonic() + WAIT
    while "dev-1" not in (out := r.run(ctl)).stdout:
        assert out.returncode == 0, out.stderr
        assert time.monotonic() < deadline, out.stdout
        time.sleep(0.2)


def securing_a_node(r: Run, block: list[str]) -> None:
    passwd, acl, start, add_user, ban, pub = block
    for line in (passwd, acl):
        done = r.run(line)
        assert done.returncode == 0, done.stderr
    r.wait_listening("1883", r.background(start))
    added = r.run(add_user)
    assert added.returncode == 0 and added.stdout.strip() == "added user bob", added.stderr
    assert "bob" in (r.tmp / "users.json").read_text()
    banned = r.run(ban)
    assert banned.returncode == 0 and banned.stdout.strip() == "banned clientid rogue-1", banned.stderr
    published = r.run(pub)
    assert published.returncode == 0, published.stderr
    refused = r.run(pub.replace("-P secret", "-P wrong"))
    assert refused.returncode != 0, "a wrong password is refused"


def keeping_state(r: Run, block: list[str]) -> None:
    start, subscribe, publish, crash, restart, receive = block
    first = r.background(start)
    r.wait_listening("1883", first)
    done = r.run(subscribe)
    assert done.returncode == 0, done.stderr
    done = r.run(publish)
    assert done.returncode == 0, done.stderr
    r.run(crash)  # pidwait's status is 1 when the node had already gone
    assert first.poll() in (-9, 128 + 9), "the line returns once the node is gone"  # killed, or its shell said so
    r.wait_listening("1883", r.background(restart))
    received = r.run(receive)
    assert received.returncode == 0 and received.stdout.strip() == "42", received.stdout + received.stderr
    assert (r.tmp / "state" / "ractmq.redb").exists()


def embedding(r: Run, block: list[str]) -> None:
    (command,) = block
    done = subprocess.run(command, shell=True, cwd=REPO_ROOT, env=r.env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr


def bridging(r: Run, block: list[str]) -> None:
    remote, start, publish, receive, listing = block
    (toml,) = [b for b in re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.S) if "[[bridges.mqtt]]" in b]
    ports = re.sub(r"\b(1883|1884)\b", lambda m: str(r.port(m.group(1))), toml)
    (r.tmp / "bridges.toml").write_text(ports)
    r.wait_listening("1884", r.background(remote))
    r.wait_listening("1883", r.background(start))
    done = r.run(publish)
    assert done.returncode == 0, done.stderr
    received = r.run(receive, timeout=60)
    assert received.returncode == 0 and received.stdout.strip() == "21.5", received.stdout + received.stderr
    listed = r.run(listing)
    assert listed.returncode == 0, listed.stderr
    row = [line.split() for line in listed.stdout.splitlines() if line.startswith("cloud ")]
    assert row and row[0][:5] == ["cloud", "mqtt", f"127.0.0.1:{r.port('1884')}", "running", "true"], listed.stdout


def rules(r: Run, block: list[str]) -> None:
    start, subscribe, publish, listing, testing, creating = block
    (toml,) = [b for b in re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.S) if "[[rules]]" in b]
    (r.tmp / "rules.toml").write_text(toml)
    r.wait_listening("1883", r.background(start))
    alerts = r.background(subscribe)
    # The subscription may not be in place when the reading is first published: publish until the alert comes.
    r.read_until(alerts, 'alerts/dev-1 {"t": 35}', retry=lambda: r.run(publish))
    listed = r.run(listing)
    assert listed.returncode == 0, listed.stderr
    row = [line.split() for line in listed.stdout.splitlines() if line.startswith("hot ")]
    assert row and row[0][:3] == ["hot", "true", "sensors/#"], listed.stdout
    matched, passed, failed = int(row[0][3]), int(row[0][4]), int(row[0][5])
    assert matched >= 1 and passed == matched and failed == 0, listed.stdout
    tested = r.run(testing)
    assert tested.returncode == 0 and tested.stdout.strip() == '{"u":"C"}', tested.stdout + tested.stderr
    created = r.run(creating)
    assert created.returncode == 0 and created.stdout.strip() == "created rule conn", created.stdout + created.stderr


def dns_discovery(r: Run, block: list[str]) -> None:
    # As in a Kubernetes pod: its name and IP from the environment. The headless service's name does not
    # resolve here, which a node takes calmly: it starts, runs alone, and keeps looking.
    r.env.update(POD_NAME="n1", POD_IP="127.0.0.1")
    node = r.background(block[0].rstrip("\\ ") + " " + block[1].strip())
    r.wait_listening("1883", node)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        status = r.run("ractmq ctl cluster status --json")
        if status.returncode == 0:
            break
        time.sleep(0.1)
    assert status.returncode == 0, status.stderr
    members = json.loads(status.stdout)
    members = members["members"] if isinstance(members, dict) else members
    assert [(m["name"], m["state"]) for m in members] == [("n1", "up")], status.stdout


RUNNERS = {
    "cargo run --release -- start": quick_start_node,
    "scripts/test-all.sh": ci_runs_the_test_command,
    "ractmq start --listen 127.0.0.1:1884": running_a_node,
    "ractmq start --tls-listen": tls_and_websocket,
    "ractmq start --listen 127.0.0.1:1883 --api-listen": cluster_of_three,
    "cargo run --release -- start                        #": first_run,
    "cargo run --example embedded": embedding,
    "mosquitto_passwd -c -b passwd": securing_a_node,
    "ractmq start --data-dir state": keeping_state,
    "mosquitto -p 1884 &": bridging,
    "ractmq start -c rules.toml": rules,
    'ractmq start --node-name "$POD_NAME"': dns_discovery,
}


def runner_of(block: str):
    """The runner whose prefix starts the block's first line; the longest wins (the first-run block starts
    like the quick start's)."""
    first = block.splitlines()[0]
    prefixes = [p for p in RUNNERS if first.startswith(p)]
    return RUNNERS[max(prefixes, key=len)] if prefixes else None


def test_every_command_block_has_a_runner():
    missing = [b.splitlines()[0] for b in sh_blocks() if runner_of(b) is None]
    assert not missing, f"README blocks with no runner in test_readme.py: {missing}"


@pytest.mark.parametrize("index", range(len(sh_blocks())))
def test_command_block_runs_as_written(run, index):
    block = sh_blocks()[index]
    runner = runner_of(block)
    assert runner is not None
    runner(run, lines(block))


def make_certificates(where: Path) -> None:
    """ca.pem, and server.pem/server.key for localhost signed by it, as the README's TLS block expects."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=where, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=readme-ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
    (where / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
