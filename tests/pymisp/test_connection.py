"""The PyMISP constructor (getVersion, users/view/me, describeTypes), API keys
in both headers, and access with a TLS client certificate."""

from __future__ import annotations

import requests
import pytest
from pymisp import MISPEvent, PyMISP
from pymisp.exceptions import PyMISPError

from conftest import connect, free_port, run_sluis
from misp_helpers import ok, tok


def test_constructor_reads_version_user_and_types(admin, node):
    # The constructor already ran getVersion, users/view/me and describeTypes.
    v = admin.misp_instance_version
    assert isinstance(v, dict) and "errors" not in v, v
    # PyMISP int()s every dotted part of both versions.
    assert all(p.isdigit() for p in v["version"].split(".")), v
    assert all(p.isdigit() for p in v["pymisp_recommended_version"].split(".")), v
    assert v["perm_sync"] is False
    assert isinstance(v["perm_sighting"], bool)
    assert admin.recommended_pymisp_version["version"] == v["pymisp_recommended_version"]
    assert admin._misp_version[:2] == (2, 5)
    # users/view/me, parsed as (MISPUser, MISPRole, [MISPUserSetting]).
    assert admin._current_user.email
    assert str(admin._current_user.id).isdigit()
    assert admin._current_role.perm_site_admin is True
    assert isinstance(admin._current_user_settings, list)


def test_get_version_pymisp_version_json(admin):
    # Older PyMISP (and some tools) ask servers/getPyMISPVersion.json.
    r = ok(admin.direct_call("servers/getPyMISPVersion.json"))
    assert all(p.isdigit() for p in r["version"].split("."))


def test_describe_types_served_whole(admin):
    remote = admin.describe_types_remote
    for k in ("categories", "types", "category_type_mappings", "sane_defaults"):
        assert k in remote, f"describeTypes result lacks {k}"
    # The constructor used the server's copy (an error would have made it fall back silently).
    assert admin.describe_types == remote
    assert "ip-dst" in remote["types"] and "Network activity" in remote["categories"]
    assert "ip-dst" in remote["category_type_mappings"]["Network activity"]
    assert remote["sane_defaults"]["ip-dst"]["default_category"] == "Network activity"
    assert int(remote["sane_defaults"]["ip-dst"]["to_ids"]) == 1
    # Same matrix as the one PyMISP ships (both are MISP's).
    local = admin.describe_types_local
    assert set(local["types"]) <= set(remote["types"])


def test_users_view_me_shape(admin):
    me = ok(admin.get_user("me"))
    assert set(me) >= {"User", "Role", "UserSetting"}
    assert me["User"]["email"] == admin._current_user.email
    assert isinstance(me["UserSetting"], (list, dict))
    assert me["Role"]["perm_site_admin"] is True


def test_x_misp_auth_header(node):
    m = connect(node, node.admin_key, http_auth_header_name="X-MISP-AUTH")
    assert m._current_role.perm_site_admin is True
    assert isinstance(ok(m.events()), list)


def test_wrong_key_refused_by_constructor(node):
    with pytest.raises(PyMISPError) as e:
        connect(node, "A" * 40)
    assert "Unable to get the user settings" in str(e.value)
    assert "403" in str(e.value)


def test_wrong_and_missing_key_on_plain_requests(node, admin):
    before = len(ok(admin.events()))
    for headers in ({}, {"Authorization": "not-a-key"}, {"Authorization": ""}):
        h = {"Accept": "application/json", "content-type": "application/json", **headers}
        r = requests.get(f"{node.url}/events/index", headers=h, verify=node.ca, timeout=30)
        assert r.status_code in (401, 403), (headers, r.status_code, r.text)
        body = r.json()
        assert body.get("message") and "name" in body and "url" in body, body
        w = requests.post(f"{node.url}/events/add", headers=h, verify=node.ca, timeout=30,
                          data=b'{"info": "written without a key"}')
        assert w.status_code in (401, 403), (headers, w.status_code, w.text)
        assert w.json().get("message")
    assert len(ok(admin.events())) == before


def test_named_parameters_and_json_suffix_accepted(admin):
    ev = MISPEvent()
    ev.info = f"named params {tok()}"
    ev.add_attribute("ip-dst", "198.51.100.77")
    made = ok(admin.add_event(ev, metadata=True))  # events/add/metadata:1
    eid = made["Event"]["id"]
    r = ok(admin.get_event(eid, no_sightings=True))  # events/view/<id>/noSightings:1
    assert r["Event"]["uuid"] == made["Event"]["uuid"]
    r = ok(admin.direct_call(f"events/view/{eid}.json"))
    assert r["Event"]["uuid"] == made["Event"]["uuid"]


# ------------------------------------------------------------------ client certificates


@pytest.fixture(scope="session")
def client_cert(node, tmp_path_factory):
    out = tmp_path_factory.mktemp("certs")
    run_sluis("issue-cert", "--ca", node.dir, "--name", "alice", "--out", out)
    return str(out / "alice.crt"), str(out / "alice.key")


@pytest.fixture(scope="session")
def foreign_cert(tmp_path_factory):
    """A client certificate from another CA (a second throwaway `sluis init`)."""
    base = tmp_path_factory.mktemp("foreign")
    run_sluis("init", "--dir", base / "node", "--name", "elsewhere", "--org", "OTHER",
              "--listen", f"127.0.0.1:{free_port()}")
    run_sluis("issue-cert", "--ca", base / "node", "--name", "mallory", "--out", base / "out")
    return {"cert": (str(base / "out" / "mallory.crt"), str(base / "out" / "mallory.key")),
            "ca": str(base / "node" / "ca.crt")}


def test_client_certificate_and_key(node, client_cert):
    m = PyMISP(node.url, node.admin_key, ssl=node.ca, cert=client_cert, timeout=30)
    assert m._current_role.perm_site_admin is True
    assert isinstance(ok(m.events()), list)
    ev = MISPEvent()
    ev.info = f"written over mutual TLS {tok()}"
    made = ok(m.add_event(ev, pythonify=True))
    assert ok(m.get_event(made.uuid))["Event"]["info"] == ev.info


def test_client_certificate_single_pem(node, client_cert, tmp_path):
    # cert= may also be one PEM file holding certificate and key.
    pem = tmp_path / "alice.pem"
    pem.write_text(open(client_cert[0]).read() + open(client_cert[1]).read())
    m = PyMISP(node.url, node.admin_key, ssl=node.ca, cert=str(pem), timeout=30)
    assert m._current_user.email


def test_client_certificate_does_not_replace_the_key(node, client_cert):
    r = requests.get(f"{node.url}/events/index", verify=node.ca, cert=client_cert, timeout=30,
                     headers={"Accept": "application/json", "content-type": "application/json"})
    assert r.status_code in (401, 403), r.text
    with pytest.raises(PyMISPError):
        PyMISP(node.url, "B" * 40, ssl=node.ca, cert=client_cert, timeout=30)


def test_foreign_ca_certificate_refused_at_tls(node, foreign_cert):
    with pytest.raises(PyMISPError) as e:
        PyMISP(node.url, node.admin_key, ssl=node.ca, cert=foreign_cert["cert"], timeout=30)
    msg = str(e.value)
    # The refusal is a TLS failure, not an HTTP answer.
    assert "Unable to connect to MISP" in msg, msg
    assert "user settings" not in msg, msg
    # And without PyMISP: the handshake (or the first read after it) fails.
    with pytest.raises(requests.exceptions.RequestException) as e2:
        requests.get(f"{node.url}/servers/getVersion", verify=node.ca, cert=foreign_cert["cert"], timeout=30,
                     headers={"Authorization": node.admin_key, "Accept": "application/json"})
    assert isinstance(e2.value, (requests.exceptions.SSLError, requests.exceptions.ConnectionError)), repr(e2.value)


def test_server_certificate_checked_by_client(node, foreign_cert):
    # PyMISP with another CA as trust anchor refuses the node (ssl= is `verify`).
    with pytest.raises(PyMISPError) as e:
        PyMISP(node.url, node.admin_key, ssl=foreign_cert["ca"], timeout=30)
    assert "Unable to connect to MISP" in str(e.value)
