"""sightings/add (to an attribute, by value), sightings/listSightings, sightings/index."""

from __future__ import annotations

import time
import uuid

import pytest
from pymisp import MISPEvent, MISPSighting

from misp_helpers import misp_error, next_ip, ok, tok

SIGHTING_FIELDS = {"id", "uuid", "attribute_id", "event_id", "org_id", "date_sighting", "source", "type"}


@pytest.fixture
def event(admin):
    ev = MISPEvent()
    ev.info = f"sighting tests {tok()}"
    ev.add_attribute("ip-dst", next_ip())
    ev.add_attribute("domain", f"seen-{tok()}.example.com")
    return ok(admin.add_event(ev, pythonify=True))


def test_add_sighting_to_attribute(admin, event, org_a):
    a = event.attributes[0]
    r = ok(admin.add_sighting({"source": "ids-sensor", "type": "0"}, a))
    s = r["Sighting"]
    missing = SIGHTING_FIELDS - set(s)
    assert not missing, f"Sighting lacks {missing}: {s}"
    assert s["attribute_id"] == str(a.id) and s["event_id"] == str(event.id)
    assert s["org_id"] == str(org_a["id"])
    assert s["source"] == "ids-sensor" and s["type"] == "0"
    assert abs(int(s["date_sighting"]) - time.time()) < 300


def test_add_sighting_by_attribute_id_and_pythonify(admin, event):
    a = event.attributes[1]
    s = MISPSighting()
    s.from_dict(source="honeypot", type="1")
    got = ok(admin.add_sighting(s, a.id, pythonify=True))
    assert isinstance(got, MISPSighting)
    assert str(got.type) == "1" and got.source == "honeypot"
    # A given timestamp becomes date_sighting (a dict: MISPSighting drops it when serialising).
    got = ok(admin.add_sighting({"source": "backfill", "type": "0", "timestamp": 1700000000}, a.uuid))
    assert got["Sighting"]["date_sighting"] == "1700000000"


def test_add_sighting_by_value(admin, user_a):
    """A value applies to every visible attribute that has it."""
    v = next_ip()
    evs = []
    for i in range(2):
        ev = MISPEvent()
        ev.info = f"same value {i} {tok()}"
        ev.add_attribute("ip-dst", v)
        evs.append(ok(admin.add_event(ev, pythonify=True)))
    r = ok(user_a.add_sighting({"value": v, "source": "by-value"}))
    assert r["Sighting"]["source"] == "by-value"
    for ev in evs:
        rows = ok(admin.sightings(ev.attributes[0]))
        assert [x["Sighting"]["source"] for x in rows] == ["by-value"], rows


def test_add_sighting_by_uuid_in_body(admin, event):
    a = event.attributes[0]
    r = ok(admin.add_sighting({"uuid": str(a.uuid), "source": "uuid-in-body"}))
    assert r["Sighting"]["attribute_id"] == str(a.id)
    r = ok(admin.add_sighting({"id": str(a.id), "source": "id-in-body"}))
    assert r["Sighting"]["attribute_id"] == str(a.id)
    assert {"uuid-in-body", "id-in-body"} <= {x["Sighting"]["source"] for x in ok(admin.sightings(a))}


def test_add_sighting_unknown(admin):
    misp_error(admin.add_sighting({"source": "x"}, str(uuid.uuid4())), 403, 404)
    misp_error(admin.add_sighting({"value": f"never-seen-{tok()}.example", "source": "x"}), 403, 404)


def test_list_sightings_event_and_attribute(admin, event, org_a):
    a0, a1 = event.attributes
    ok(admin.add_sighting({"source": "s0"}, a0))
    ok(admin.add_sighting({"source": "s1", "type": "1"}, a1))
    ok(admin.add_sighting({"source": "s2"}, a1))
    rows = ok(admin.sightings(event))
    assert isinstance(rows, list) and len(rows) == 3
    for row in rows:
        assert set(row) >= {"Sighting", "Organisation"}
        assert row["Organisation"]["name"] == "CERT-A"
        assert row["Sighting"]["event_id"] == str(event.id)
    assert sorted(r["Sighting"]["source"] for r in rows) == ["s0", "s1", "s2"]
    rows = ok(admin.sightings(a1, pythonify=True))
    assert all(isinstance(s, MISPSighting) for s in rows)
    assert sorted(s.source for s in rows) == ["s1", "s2"]
    assert all(str(s.attribute_id) == str(a1.id) for s in rows)
    # Filtered by organisation.
    assert len(ok(admin.sightings(event, org=org_a["id"]))) == 3


def test_sightings_index(admin, event):
    src = f"index-{tok()}"
    ok(admin.add_sighting({"source": src}, event.attributes[0]))
    rows = ok(admin.sightings())
    assert isinstance(rows, list)
    assert src in {r["Sighting"]["source"] for r in rows}


def test_sightings_in_event_view(admin, event):
    a = event.attributes[0]
    ok(admin.add_sighting({"source": "in-view"}, a))
    ev = ok(admin.get_event(event.id))["Event"]
    att = next(x for x in ev["Attribute"] if x["uuid"] == str(a.uuid))
    assert "in-view" in {s["source"] for s in att.get("Sighting", [])}
    ev = ok(admin.get_event(event.id, no_sightings=True))["Event"]
    att = next(x for x in ev["Attribute"] if x["uuid"] == str(a.uuid))
    assert not att.get("Sighting")


def test_other_org_sees_only_its_own_sightings(admin, user_b, event):
    a = event.attributes[0]  # the event has distribution 1: CERT-B sees it
    ok(admin.add_sighting({"source": "owner-side"}, a))
    ok(user_b.add_sighting({"source": "partner-side"}, a))
    assert {r["Sighting"]["source"] for r in ok(user_b.sightings(a))} == {"partner-side"}
    assert {r["Sighting"]["source"] for r in ok(admin.sightings(a))} == {"owner-side", "partner-side"}


def test_sightings_have_ids_and_each_is_listed(admin, event):
    """Issue 12: `sightings/add` answers the stored row with its id (a numeric
    string, MISP's `Sighting::saveSightings` re-reads it), and every sighting
    of an attribute is its own row of `listSightings`, newest first
    (`Sighting::listSightings`, ORDER BY date_sighting DESC), with the ids the
    adds answered."""
    a = event.attributes[0]
    first = ok(admin.add_sighting({"source": "first", "timestamp": 1700000000}, a))["Sighting"]
    second = ok(admin.add_sighting({"source": "second", "type": "1", "timestamp": 1700000100}, a))["Sighting"]
    for s in (first, second):
        assert isinstance(s["id"], str) and s["id"].isdigit(), s
    assert first["id"] != second["id"]
    rows = ok(admin.sightings(a))
    assert [r["Sighting"]["source"] for r in rows] == ["second", "first"]
    assert [r["Sighting"]["id"] for r in rows] == [second["id"], first["id"]]
    view = ok(admin.get_event(event.id))["Event"]
    att = next(x for x in view["Attribute"] if x["uuid"] == str(a.uuid))
    assert {s["id"] for s in att["Sighting"]} == {first["id"], second["id"]}
