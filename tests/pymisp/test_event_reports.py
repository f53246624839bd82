"""Event reports (eventReports/add|view|edit|delete|index), as MISP's
EventReportsController answers them; the flow of PyMISP's live
`test_event_report`, plus visibility and rights."""

from __future__ import annotations

from pymisp import MISPEvent, MISPEventReport

from misp_helpers import misp_error, next_ip, ok, tok


def new_event(client, distribution: int = 1) -> MISPEvent:
    ev = MISPEvent()
    ev.info = f"reports {tok()}"
    ev.distribution = distribution
    ev.add_attribute("ip-dst", next_ip())
    return ok(client.add_event(ev, pythonify=True))


def new_report(name: str = "Test Event Report") -> MISPEventReport:
    r = MISPEventReport()
    r.name = name
    r.content = "# Example report markdown"
    r.distribution = 5
    return r


def test_event_report_flow(user_a):
    """PyMISP's live test, step by step (`EventReportsController::add|edit|
    delete|index`): linked by event id, present on the event with the same
    id, updatable, listed by event id, soft- then hard-deletable."""
    event = new_event(user_a)
    report = ok(user_a.add_event_report(event.id, new_report(), pythonify=True))
    assert isinstance(report, MISPEventReport)
    assert report.event_id == event.id
    assert str(report.id).isdigit()
    again = ok(user_a.get_event(event, pythonify=True))
    assert again.event_reports[0].id == report.id
    assert again.event_reports[0].content == "# Example report markdown"
    report.name = "Updated Event Report"
    report.content = "Updated content"
    updated = ok(user_a.update_event_report(report, pythonify=True))
    assert updated.name == "Updated Event Report" and updated.content == "Updated content"
    listed = ok(user_a.get_event_reports(event.id, pythonify=True))
    assert [r.id for r in listed] == [report.id]
    raw = ok(user_a.get_event_report(report.id))
    assert set(raw) >= {"EventReport", "SharingGroup", "Event"}
    assert raw["Event"]["id"] == str(event.id)
    r = ok(user_a.delete_event_report(report))
    assert r["success"] is True
    assert r["name"] == f"Event Report {report.uuid} soft deleted"
    assert ok(user_a.get_event_reports(event.id)) == []
    r = ok(user_a.delete_event_report(report, True))
    assert r["success"] is True and r["name"].endswith("hard deleted")
    misp_error(user_a.get_event_report(report.id), 404)


def test_event_reports_follow_visibility_and_rights(user_a, user_b):
    """A report is visible where its event and its own distribution allow,
    and only the event's organisation may change it."""
    shared = new_event(user_a, distribution=1)
    report = ok(user_a.add_event_report(shared.id, new_report("shared"), pythonify=True))
    private = new_report("kept in CERT-A")
    private.distribution = 0
    hidden = ok(user_a.add_event_report(shared.id, private, pythonify=True))
    seen = ok(user_b.get_event(shared.id, pythonify=True))
    assert {r.name for r in seen.event_reports} == {"shared"}
    assert ok(user_b.get_event_report(report.id))["EventReport"]["name"] == "shared"
    misp_error(user_b.get_event_report(hidden.id), 404)
    assert [r["EventReport"]["name"] for r in ok(user_b.get_event_reports(shared.id))] == ["shared"]
    report.name = "taken over"
    misp_error(user_b.update_event_report(report), 403)
    misp_error(user_b.delete_event_report(report), 403)
    misp_error(user_b.add_event_report(shared.id, new_report("intruder")), 403)
    assert ok(user_a.get_event_report(report.id))["EventReport"]["name"] == "shared"
