"""Attachments and malware samples: their content in event JSON and
`attributes/download` (MISP's AttributesController::download, L279-308).

What MISP stores for a file attribute is its `data` decoded; `download` serves
it back as a download. A malware sample's `data` is, by MISP convention, a zip
holding `<md5>` and `<md5>.filename.txt` (MISP builds it with the password
`infected`; Python's zipfile writes no encrypted zips, and PyMISP reads the
members the same way whether they are encrypted or not).
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile

from pymisp import MISPEvent

from misp_helpers import misp_error, ok, tok

NO_ACCESS = "Attribute does not exist or you do not have the permission to download this attribute."


def download(misp, ident):
    return misp._prepare_request("GET", f"attributes/download/{ident}")


def sample_zip(content: bytes, filename: str) -> bytes:
    md5 = hashlib.md5(content).hexdigest()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(md5, content)
        z.writestr(f"{md5}.filename.txt", filename)
    return buf.getvalue()


def test_an_attachment_is_carried_and_downloaded_as_a_file_never_as_a_page(admin):
    content = f"<html><script>alert('{tok()}')</script></html>".encode()
    e = MISPEvent()
    e.info = f"attachment {tok()}"
    e.add_attribute("attachment", value="report.html", data=io.BytesIO(content))
    e.add_attribute("domain", value=f"plain-{tok()}.example")
    e = ok(admin.add_event(e, pythonify=True))
    att = next(a for a in e.attributes if a.type == "attachment")
    dom = next(a for a in e.attributes if a.type == "domain")
    # events/view carries the content (MISP: includeAttachments defaults to true).
    view = ok(admin.get_event(e.id))["Event"]
    shown = next(a for a in view["Attribute"] if a["type"] == "attachment")
    assert base64.b64decode(shown["data"]) == content
    # restSearch only with withAttachments (Event.php 1783, 7454).
    plain = ok(admin.search(controller="attributes", eventid=e.id, type_attribute="attachment"))
    assert "data" not in plain["Attribute"][0]
    full = ok(admin.search(controller="attributes", eventid=e.id, type_attribute="attachment", with_attachments=True))
    assert base64.b64decode(full["Attribute"][0]["data"]) == content

    for ident in (att.id, att.uuid):
        r = download(admin, ident)
        assert r.status_code == 200, r.text
        assert r.content == content
        # Never a type a browser would render or run (MISP would say text/html).
        assert r.headers["Content-Type"] == "application/octet-stream"
        assert r.headers["Content-Disposition"] == 'attachment; filename="report.html"'
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in r.headers["Content-Security-Policy"]

    # MISP's answers for what is not a downloadable file.
    for ident in (dom.id, "999999999", "00000000-0000-4000-8000-000000000000"):
        r = download(admin, ident)
        assert r.status_code == 401, r.text
        assert r.json()["message"] == NO_ACCESS
    r = download(admin, "not-an-id")
    assert r.status_code == 404 and r.json()["message"] == "Invalid attribute ID."


def test_a_malware_sample_downloads_as_its_zip_and_pymisp_opens_it(admin):
    content = f"MZ sample {tok()}".encode()
    md5 = hashlib.md5(content).hexdigest()
    packed = sample_zip(content, "evil.exe")
    e = MISPEvent()
    e.info = f"malware sample {tok()}"
    e = ok(admin.add_event(e, pythonify=True))
    a = ok(admin.direct_call(f"attributes/add/{e.id}", {
        "type": "malware-sample", "value": f"evil.exe|{md5}", "data": base64.b64encode(packed).decode()}))["Attribute"]
    assert a["value"] == f"evil.exe|{md5}"
    r = download(admin, a["id"])
    assert r.status_code == 200, r.text
    assert r.content == packed
    assert r.headers["Content-Type"] == "application/zip"
    assert r.headers["Content-Disposition"] == 'attachment; filename="evil.exe.zip"'
    # PyMISP's malware_binary unpacks the sample from the event it reads.
    got = ok(admin.get_event(e.id, pythonify=True))
    sample = next(x for x in got.attributes if x.type == "malware-sample")
    assert sample.malware_binary.getvalue() == content
    assert sample.malware_filename == "evil.exe"


def test_file_content_that_is_not_base64_is_refused_and_nothing_is_stored(admin):
    ev = MISPEvent()
    ev.info = f"bad data {tok()}"
    ev = ok(admin.add_event(ev, pythonify=True))
    before = ok(admin.get_event(ev.id))["Event"]["Attribute"]
    err = misp_error(admin.direct_call(f"attributes/add/{ev.id}", {
        "type": "attachment", "value": "x.bin", "data": "not base64 !"}), 403)
    assert "data" in str(err), err
    assert ok(admin.get_event(ev.id))["Event"]["Attribute"] == before
