"""The platform's catalogue snapshot: outages at start, the local copy, /resetcache, /status."""

from __future__ import annotations

import time

from vp_support import (
    assert_vp,
    client,
    envelope,
    main_snapshot,
    permit,
    route,
    snapshot,
)

PATH = "/GetListing/2/rivtabp21"


def call(certs, platform, address: str):
    with client(certs, certs.consumer) as s:
        return s.post(platform.urls["https"] + PATH, data=envelope(address=address), timeout=15)


def test_no_catalogue_and_no_local_copy_gives_vp008(certs, platform_factory, tmp_path):
    p = platform_factory("lonely", str(tmp_path / "no-such-snapshot.json"), certs=certs)
    assert p.ops("/ready").status_code == 503
    status = p.ops("/status").json()
    assert status["loaded"] is False and status["routes"] == 0
    assert status["instance"] == "vp-test"
    assert_vp(call(certs, p, "08"), "VP008", "Server")
    assert_vp(call(certs, p, "anything"), "VP008", "Server")


def test_resetcache_outage_and_restart_from_the_local_copy(certs, producers, platform_factory):
    ok = f"{producers.https}/ok/GetListing/2/rivtabp21"
    first = snapshot("snap-A", [route("08", ok)], [permit("08")])
    second = snapshot("snap-B", [route("08", ok), route("new", ok)],
                      [permit("08"), permit("new")])
    producers.catalogue_snapshot = first.to_json()
    try:
        p = platform_factory("cat", producers.catalogue, "--catalogue-retry", "0.2",
                             certs=certs)
        status = p.ops("/status").json()
        assert (status["snapshot_id"], status["origin"], status["routes"],
                status["permissions"]) == ("snap-A", "catalogue", 1, 1)
        assert p.ops("/ready").status_code == 200
        assert_vp(call(certs, p, "new"), "VP004", "Client")

        producers.catalogue_snapshot = second.to_json()
        assert call(certs, p, "new").status_code != 200  # nothing changes before a reset
        reset = p.ops("/resetcache")
        assert reset.status_code == 200 and reset.json()["snapshot_id"] == "snap-B"
        assert call(certs, p, "new").status_code == 200

        producers.catalogue_snapshot = None  # the catalogue goes down
        failed = p.ops("/resetcache")
        assert failed.status_code == 502 and failed.json()["reloaded"] is False
        assert call(certs, p, "new").status_code == 200  # the last snapshot stays in use
        p.stop()

        # restart while the catalogue is down: the saved copy (snap-B) is used
        p = platform_factory("cat", producers.catalogue, "--catalogue-retry", "0.2",
                             certs=certs)
        status = p.ops("/status").json()
        assert (status["snapshot_id"], status["origin"]) == ("snap-B", "local-copy")
        assert p.ops("/ready").status_code == 200
        assert call(certs, p, "new").status_code == 200

        # the catalogue comes back: the platform picks it up by itself
        producers.catalogue_snapshot = first.to_json()
        deadline = time.monotonic() + 5
        while p.ops("/status").json()["origin"] != "catalogue":
            assert time.monotonic() < deadline, "catalogue not picked up again"
            time.sleep(0.1)
        assert p.ops("/status").json()["snapshot_id"] == "snap-A"
        assert_vp(call(certs, p, "new"), "VP004", "Client")
    finally:
        producers.catalogue_snapshot = None


def test_resetcache_rereads_a_snapshot_file(certs, producers, platform_factory, tmp_path):
    snap_file = tmp_path / "snapshot.json"
    full = main_snapshot(producers)
    snapshot("small", [r for r in full.routes if r.logical_address != "08"],
             full.permissions).save(snap_file)
    p = platform_factory("file", str(snap_file), certs=certs)
    assert_vp(call(certs, p, "08"), "VP004", "Client")
    full.save(snap_file)
    assert p.ops("/resetcache").json()["snapshot_id"] == "main-1"
    assert call(certs, p, "08").status_code == 200
    assert (p.state_dir / "last-good-snapshot.json").exists()


def test_catalogue_poll_picks_up_a_new_publication_without_reset(certs, producers,
                                                                 platform_factory):
    """With --catalogue-poll the platform uses a newly published snapshot within the interval
    (how the pilot connects a region while it runs), keeps the current one while the catalogue
    is down, and is quiet when nothing changed."""
    ok = f"{producers.https}/ok/GetListing/2/rivtabp21"
    producers.catalogue_snapshot = snapshot("poll-A", [route("08", ok)], [permit("08")]).to_json()
    try:
        p = platform_factory("cat", producers.catalogue, "--catalogue-poll", "0.2", certs=certs)
        assert_vp(call(certs, p, "03"), "VP004", "Client")
        producers.catalogue_snapshot = snapshot(
            "poll-B", [route("08", ok), route("03", ok)], [permit("08"), permit("03")]).to_json()
        deadline = time.monotonic() + 10
        while p.ops("/status").json()["snapshot_id"] != "poll-B":
            assert time.monotonic() < deadline, "the new snapshot was not picked up"
            time.sleep(0.1)
        assert call(certs, p, "03").status_code == 200
        producers.catalogue_snapshot = None  # catalogue down: the current snapshot stays
        time.sleep(0.6)
        assert p.ops("/status").json()["snapshot_id"] == "poll-B"
        assert call(certs, p, "03").status_code == 200
    finally:
        producers.catalogue_snapshot = None
