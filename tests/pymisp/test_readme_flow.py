"""The README's run command on a fresh directory: `sluis serve` with no config
creates ./sluis-data, prints the admin key once, and a PyMISP script using that
key and ssl= pointing at the dev CA creates, reads, searches and deletes an event.
"""

import socket
import subprocess
import time
from pathlib import Path

import pytest
from pymisp import MISPEvent, PyMISP

from conftest import LISTENING, sluis_bin

README_URL = "https://127.0.0.1:8443"


def port_8443_free() -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 8443))
        except OSError:
            return False
    return True


def test_readme_run_command_then_pymisp(tmp_path: Path):
    if not port_8443_free():
        pytest.skip("127.0.0.1:8443 is in use on this machine; the README command needs it")
    proc = subprocess.Popen([str(sluis_bin()), "serve"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        key = proc.stdout.readline().strip()
        assert len(key) == 40, f"first stdout line should be the admin key, got {key!r}"
        deadline = time.time() + 60
        url = None
        while time.time() < deadline and url is None:
            line = proc.stderr.readline()
            if not line:
                break
            m = LISTENING.search(line)
            if m:
                url = m.group(1)
        assert url == README_URL, f"expected {README_URL}, got {url}"
        data = tmp_path / "sluis-data"
        assert (data / "admin.key").read_text().strip() == key
        for f in ["sluis.toml", "ca.crt", "node.crt", "node.key", "signing.key"]:
            assert (data / f).exists(), f

        misp = PyMISP(url, key, ssl=str(data / "ca.crt"))
        ev = MISPEvent()
        ev.info = "README flow"
        ev.add_attribute("ip-dst", "203.0.113.77")
        made = misp.add_event(ev, pythonify=True)
        assert not isinstance(made, dict), made
        got = misp.get_event(made.uuid, pythonify=True)
        assert got.attributes[0].value == "203.0.113.77"
        found = misp.search(controller="attributes", value="203.0.113.77", pythonify=True)
        assert [a.value for a in found] == ["203.0.113.77"]
        r = misp.delete_event(made.uuid)
        assert r.get("message") == "Event deleted.", r
        assert "errors" in misp.get_event(made.uuid)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
