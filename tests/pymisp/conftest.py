"""Fixtures for the PyMISP compatibility suite.

One sluis node is created (`sluis init`) in a temporary directory and served
(`sluis serve`) for the whole session; nothing is built here. The binary is
`$SLUIS_BIN`, default `target/debug/sluis` relative to the repository root
(`scripts/test-pymisp` builds it and sets the variable).

Clients:
- `admin`: the site admin made by `sluis init` (organisation CERT-A, the node's).
- `org_a`, `org_b`: the node's organisation, and CERT-B added through the API
  with a uuid of our choosing.
- `user_a`, `publisher_a`, `readonly_a`, `user_b`, `publisher_b`, `readonly_b`:
  PyMISP clients of users created through the API (roles 3, 4 and 6), each with
  a key from `get_new_authkey`.

When a test fails, the node's stderr written during that test is attached to
the report ("sluis stderr" section).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pymisp import MISPOrganisation, MISPUser, PyMISP

REPO = Path(__file__).resolve().parents[2]

# The node's body limit is lowered so the "oversized body" test sends 2 MiB,
# not 101 MiB, through a debug build.
MAX_DOCUMENT_MIB = 1

ROLE_ADMIN = 1
ROLE_ORG_ADMIN = 2
ROLE_USER = 3
ROLE_PUBLISHER = 4
ROLE_SYNC = 5
ROLE_READ_ONLY = 6

CERT_B_UUID = str(uuid.uuid4())

STARTUP_TIMEOUT = 60
LISTENING = re.compile(r"sluis listening on (https://\S+)")


def sluis_bin() -> Path:
    raw = os.environ.get("SLUIS_BIN", "target/debug/sluis")
    p = Path(raw)
    if not p.is_absolute():
        p = REPO / p
    return p


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_sluis(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs a one-shot sluis command; fails the session with its output on error."""
    cmd = [str(sluis_bin()), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}",
            pytrace=False,
        )
    return proc


@dataclass
class Node:
    dir: Path
    url: str
    ca: str
    admin_key: str
    org_uuid: str
    stderr_path: Path
    proc: subprocess.Popen | None = None
    extra: dict = field(default_factory=dict)

    def stderr(self, offset: int = 0) -> str:
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stderr_size(self) -> int:
        try:
            return self.stderr_path.stat().st_size
        except FileNotFoundError:
            return 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _set_listen(config: Path, port: int) -> None:
    text = config.read_text()
    text = re.sub(r'(?m)^listen\s*=.*$', f'listen = "127.0.0.1:{port}"', text)
    text = re.sub(r'(?m)^url\s*=.*$', f'url = "https://127.0.0.1:{port}"', text)
    config.write_text(text)


def _set_limit(config: Path) -> None:
    """Sets [limits] max_document_mib, whether or not `sluis init` wrote a [limits] table.

    Also turns off the per-address limit on failed authentications: this suite
    sends over a hundred wrong keys from one address on purpose (connection reuse
    after an error) and then expects MISP's 403 for later wrong keys and 200 for
    the right one, where the limit would answer 429. The limit itself is tested
    in tests/abuse.rs."""
    text = re.sub(r"(?m)^(max_document_mib|auth_failures_per_min)\s*=.*\n?", "", config.read_text())
    line = f"max_document_mib = {MAX_DOCUMENT_MIB}\nauth_failures_per_min = 0\n"
    if re.search(r"(?m)^\[limits\]\s*$", text):
        text = re.sub(r"(?m)^\[limits\]\s*$\n?", "[limits]\n" + line, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n[limits]\n" + line
    config.write_text(text)


def _start(node: Node, config: Path) -> None:
    """Starts `sluis serve` and waits for its "listening" line."""
    err = open(node.stderr_path, "ab")
    node.proc = subprocess.Popen(
        [str(sluis_bin()), "serve", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=err,
        env={**os.environ, "NO_COLOR": "1"},
    )
    err.close()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        m = LISTENING.search(node.stderr())
        if m:
            node.url = m.group(1)
            return
        if node.proc.poll() is not None:
            raise RuntimeError(f"sluis serve exited with status {node.proc.returncode} before listening")
        time.sleep(0.05)
    raise RuntimeError(f"sluis serve did not print 'sluis listening on …' within {STARTUP_TIMEOUT}s")


def _stop(node: Node) -> bool:
    """SIGTERM, then SIGKILL after 20 s; True if it stopped on SIGTERM (or had stopped)."""
    if node.proc is None or node.proc.poll() is not None:
        return True
    node.proc.send_signal(signal.SIGTERM)
    try:
        node.proc.wait(timeout=20)
        return True
    except subprocess.TimeoutExpired:
        node.proc.kill()
        node.proc.wait(timeout=10)
        return False


_NODE_KEY = pytest.StashKey[Node]()
_OFFSET_KEY = pytest.StashKey[int]()


@pytest.fixture(scope="session")
def node(tmp_path_factory, request) -> Node:
    binary = sluis_bin()
    if not binary.is_file():
        pytest.exit(f"sluis binary not found at {binary} (set SLUIS_BIN or run scripts/test-pymisp)", returncode=2)
    base = tmp_path_factory.mktemp("sluis")
    d = base / "node-a"
    port = free_port()
    init = run_sluis("init", "--dir", d, "--name", "localhost", "--org", "CERT-A", "--listen", f"127.0.0.1:{port}")
    m = re.search(r"admin key:\s*(\S+)", init.stdout + init.stderr)
    assert m, f"`sluis init` printed no admin key:\n{init.stdout}\n{init.stderr}"
    admin_key = m.group(1)
    assert (d / "admin.key").read_text().strip() == admin_key, "admin.key differs from the printed admin key"
    config = d / "sluis.toml"
    _set_limit(config)
    org_uuid = re.search(r'(?m)^org_uuid\s*=\s*"([^"]+)"', config.read_text()).group(1)
    node = Node(dir=d, url="", ca=str(d / "ca.crt"), admin_key=admin_key, org_uuid=org_uuid,
                stderr_path=base / "node-a.stderr")
    for attempt in range(3):
        try:
            _start(node, config)
            break
        except RuntimeError as e:
            in_use = "in use" in node.stderr().lower()
            _stop(node)
            if in_use and attempt < 2:
                _set_listen(config, free_port())
                continue
            pytest.fail(f"{e}\n--- sluis stderr\n{node.stderr()}", pytrace=False)
    request.config.stash[_NODE_KEY] = node
    yield node
    died = not node.alive()
    graceful = _stop(node)
    tail = "\n".join(node.stderr().splitlines()[-200:])
    if died:
        pytest.fail(f"sluis serve died during the session (status {node.proc.returncode}); stderr tail:\n{tail}", pytrace=False)
    if not graceful:
        pytest.fail(f"sluis serve did not stop within 20 s of SIGTERM; stderr tail:\n{tail}", pytrace=False)


@pytest.fixture(autouse=True)
def _node_log_window(request):
    """Remembers where the node's stderr stood when the test began (see the hook below)."""
    node_obj = request.config.stash.get(_NODE_KEY, None)
    request.node.stash[_OFFSET_KEY] = node_obj.stderr_size() if node_obj else 0
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        node_obj = item.config.stash.get(_NODE_KEY, None)
        if node_obj is not None:
            offset = item.stash.get(_OFFSET_KEY, 0)
            lines = node_obj.stderr(offset).splitlines()
            if len(lines) > 60:
                lines = [f"… ({len(lines) - 60} earlier lines)"] + lines[-60:]
            text = "\n".join(lines)
            state = "running" if node_obj.alive() else f"EXITED with status {node_obj.proc.returncode if node_obj.proc else '?'}"
            rep.sections.append((f"sluis stderr during this test (node {state})", text or "(nothing)"))


# --------------------------------------------------------------------------- clients


def connect(node: Node, key: str, **kw) -> PyMISP:
    return PyMISP(node.url, key, ssl=node.ca, timeout=60, **kw)


@pytest.fixture(scope="session")
def admin(node) -> PyMISP:
    return connect(node, node.admin_key)


@pytest.fixture(scope="session")
def org_a(admin, node) -> dict:
    org = admin.get_organisation(node.org_uuid)
    assert "errors" not in org, org
    return org["Organisation"]


@pytest.fixture(scope="session")
def org_b(admin) -> dict:
    org = MISPOrganisation()
    org.name = "CERT-B"
    org.uuid = CERT_B_UUID
    org.local = True
    org.description = "second organisation, added by the PyMISP suite"
    r = admin.add_organisation(org)
    assert "errors" not in r, r
    return r["Organisation"]


class Accounts:
    """Users made through the API, one per (organisation, role), with PyMISP clients."""

    def __init__(self, node: Node, admin: PyMISP, orgs: dict[str, dict]):
        self.node = node
        self.admin = admin
        self.orgs = orgs
        self.clients: dict[tuple[str, int], PyMISP] = {}
        self.users: dict[tuple[str, int], dict] = {}
        self.keys: dict[tuple[str, int], str] = {}

    def create(self, org: str, role_id: int) -> tuple[dict, str]:
        k = (org, role_id)
        if k not in self.users:
            u = MISPUser()
            u.email = f"role{role_id}-{org.lower()}-{uuid.uuid4().hex[:8]}@example.org"
            u.org_id = self.orgs[org]["id"]
            u.role_id = role_id
            r = self.admin.add_user(u)
            assert "errors" not in r, r
            self.users[k] = r["User"]
            self.keys[k] = self.admin.get_new_authkey(r["User"]["id"])
        return self.users[k], self.keys[k]

    def client(self, org: str, role_id: int) -> PyMISP:
        k = (org, role_id)
        if k not in self.clients:
            _, key = self.create(org, role_id)
            self.clients[k] = connect(self.node, key)
        return self.clients[k]


@pytest.fixture(scope="session")
def accounts(node, admin, org_a, org_b) -> Accounts:
    return Accounts(node, admin, {"CERT-A": org_a, "CERT-B": org_b})


@pytest.fixture(scope="session")
def user_a(accounts) -> PyMISP:
    return accounts.client("CERT-A", ROLE_USER)


@pytest.fixture(scope="session")
def publisher_a(accounts) -> PyMISP:
    return accounts.client("CERT-A", ROLE_PUBLISHER)


@pytest.fixture(scope="session")
def readonly_a(accounts) -> PyMISP:
    return accounts.client("CERT-A", ROLE_READ_ONLY)


@pytest.fixture(scope="session")
def user_b(accounts) -> PyMISP:
    return accounts.client("CERT-B", ROLE_USER)


@pytest.fixture(scope="session")
def publisher_b(accounts) -> PyMISP:
    return accounts.client("CERT-B", ROLE_PUBLISHER)


@pytest.fixture(scope="session")
def readonly_b(accounts) -> PyMISP:
    return accounts.client("CERT-B", ROLE_READ_ONLY)
