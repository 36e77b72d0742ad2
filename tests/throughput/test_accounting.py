"""Slot time accounting (pure): busy, idle, and idle while work waited."""

from orze.daemon.accounting import SlotClock, node_utilisation


def test_busy_idle_and_waiting_idle():
    c = SlotClock(created_at=0.0)
    c.work_waiting(0.0, waiting=True)       # work queued while the slot is free: the scheduler's fault
    c.start(1.0)                             # 1 s of waiting idle
    c.work_waiting(2.0, waiting=True)        # ignored while busy
    c.stop(11.0)                             # 10 s busy
    c.work_waiting(11.0, waiting=False)      # queue empty: idle, but not waiting
    c.work_waiting(15.0, waiting=True)       # work arrives
    c.start(15.5)                            # 0.5 s waiting idle
    snap = c.snapshot(20.0)                  # 4.5 s into the second job
    assert snap["busy_s"] == 14.5
    assert snap["idle_s"] == 5.5
    assert snap["waiting_idle_s"] == 1.5
    assert snap["jobs"] == 2
    assert abs(snap["utilisation"] - 14.5 / 20) < 1e-9
    assert abs(snap["waiting_idle_fraction"] - 1.5 / 20) < 1e-9


def test_waiting_counts_up_to_now_while_still_free():
    c = SlotClock(created_at=100.0)
    c.work_waiting(102.0, waiting=True)
    snap = c.snapshot(110.0)
    assert snap["waiting_idle_s"] == 8.0 and snap["busy_s"] == 0.0 and snap["idle_s"] == 10.0


def test_node_totals_weight_slots_by_time():
    a = SlotClock(0.0)
    a.start(0.0)
    b = SlotClock(0.0)
    b.work_waiting(0.0, True)
    totals = node_utilisation([a.snapshot(10.0), b.snapshot(10.0)])
    assert totals == {"utilisation": 0.5, "waiting_idle_fraction": 0.5}
