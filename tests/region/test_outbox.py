"""The outbox: back-off, several workers at once, a worker that dies mid-delivery."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

from sqlalchemy import select

from interactions.models import message_class
from producers import outbox
from producers.inprocess import create, ctx_for, listing_counties, wire
from producers.storage.models import OutboxMessage


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    rng = random.Random(1)
    for attempts, base in ((1, 2), (2, 4), (5, 32), (30, 3600)):
        waits = [outbox.backoff(attempts, rng).total_seconds() for _ in range(50)]
        assert base * 0.5 <= min(waits) and max(waits) <= base * 1.5
        assert len(set(waits)) > 1  # jitter: workers do not retry in lock-step


def backlog(make_region, people, clock, network, n: int):
    r01, r08 = make_region("01"), make_region("08")  # 08 queues when the home is down
    network.down.add("01")
    pids = [people.adult("01") for _ in range(n)]
    for i, pid in enumerate(pids):
        unit = r08.config.units[2 + i % 5].hsa_id
        assert wire(r08.handle(create(pid, unit, home="01"), ctx_for(clock))).resultCode == "INFO"
    network.down.clear()
    network.sent.clear()
    return r01, r08, pids


def test_several_workers_deliver_each_message_exactly_once(make_region, people, clock,
                                                           network):
    r01, r08, pids = backlog(make_region, people, clock, network, 12)
    clock.advance(hours=2)
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            while outbox.run_due(r08, clock(), limit=2):
                pass
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    sent = [req.personId.extension for _, _, req in network.sent]
    assert sorted(sent) == sorted(pids)  # every one, none twice
    with r08.db.transaction() as s:
        assert set(s.execute(select(OutboxMessage.status)).scalars()) == {"delivered"}
    assert all(listing_counties(r01, pid) == ["08"] for pid in pids)


def test_a_worker_that_dies_mid_delivery_loses_nothing(make_region, people, clock, network):
    r01, r08, pids = backlog(make_region, people, clock, network, 2)
    ping = message_class("PingForConfiguration")(serviceContractNamespace="x", logicalAddress="08")
    conf = {c.name: c.value for c in r08.handle(ping, ctx_for(clock)).configuration}
    assert conf["outboxPending"] == "2" and conf["outboxOldestPending"]  # visible to operators
    clock.advance(hours=2)
    claimed = outbox._claim(r08, clock(), 10)  # a worker claims both rows, then dies
    assert len(claimed) == 2
    assert outbox.run_due(r08, clock() + timedelta(seconds=30)) == {}  # still leased
    later = clock() + outbox.LEASE + timedelta(seconds=1)
    assert outbox.run_due(r08, later) == {"delivered": 2}
    assert [listing_counties(r01, pid) for pid in pids] == [["08"], ["08"]]


def test_a_restarted_region_takes_back_the_leases_of_a_killed_process(make_region, people,
                                                                      clock, network):
    import subprocess
    import sys

    r01, r08, pids = backlog(make_region, people, clock, network, 3)
    clock.advance(hours=2)
    assert len(outbox._claim(r08, clock(), 10)) == 3  # this process leases all three ...
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    gone = f"{outbox.HOST}:{dead.stdout.strip()}"
    with r08.db.transaction() as s:  # ... and pretend two were leased by a process now gone
        rows = list(s.execute(select(OutboxMessage).order_by(OutboxMessage.id)).scalars())
        rows[0].lease_owner = rows[1].lease_owner = gone
        rows[2].lease_owner = "another-host:1"  # its lease runs out on its own
    assert outbox.release_orphaned_leases(r08) == 2
    assert outbox.run_due(r08, clock()) == {"delivered": 2}  # at once, not a lease later
    later = clock() + outbox.LEASE + timedelta(seconds=1)
    assert outbox.run_due(r08, later) == {"delivered": 1}
    assert [listing_counties(r01, pid) for pid in pids] == [["08"]] * 3


def test_a_live_process_keeps_its_leases(make_region, people, clock, network):
    _, r08, _ = backlog(make_region, people, clock, network, 1)
    clock.advance(hours=2)
    assert len(outbox._claim(r08, clock(), 10)) == 1  # leased by this (running) process
    assert outbox.release_orphaned_leases(r08) == 0
    assert outbox.run_due(r08, clock()) == {}


def test_the_serve_worker_works_off_a_backlog_without_pausing(make_region, people, clock,
                                                              network):
    """One step of `listning region serve`'s outbox worker: pass after pass while passes come
    back full (a unit closure queues hundreds), not one pass of 20 per interval."""
    from producers.serve_cli import OUTBOX_PASS_SIZE, outbox_step

    _, r08, pids = backlog(make_region, people, clock, network, 2 * OUTBOX_PASS_SIZE + 5)
    clock.advance(hours=2)
    outbox_step(r08)()
    with r08.db.transaction() as s:
        assert outbox.pending_count(s) == 0
    assert sorted(req.personId.extension for _, _, req in network.sent) == sorted(pids)
