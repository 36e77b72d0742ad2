"""The daemon's cached queue listing: bounded listing cost, fresh after own changes, and safe when
another node takes an entry it still lists."""


from orze.layout import Layout
from orze.store import queue


def put(layout, i, priority="medium"):
    e = queue.Entry(id=f"r{i:03d}", fingerprint=f"fp{i}", config={"seed": i}, meta={"priority": priority},
                    admitted_at=1000.0 + i)
    queue.put(layout, e)
    return e


def test_view_lists_in_order_and_respects_min_age(tmp_path):
    layout = Layout.at(tmp_path).ensure()
    for i in range(3):
        put(layout, i)
    v = queue.View(layout, min_age_s=100.0)
    v.refresh(now=0.0)
    assert [n.split("-", 2)[2] for n in v.names] == ["r000.json", "r001.json", "r002.json"]
    put(layout, 3, priority="critical")
    v.refresh(now=1.0)               # too soon and not invalidated: the cached listing stands
    assert len(v) == 3
    v.invalidate()                   # this node changed the queue: list again at once
    v.refresh(now=1.5)
    assert v.names[0].endswith("r003.json") and len(v) == 4
    put(layout, 4)
    v.refresh(now=101.6)             # old enough: list again
    assert len(v) == 5


def test_listing_floor_scales_with_listing_cost(tmp_path):
    layout = Layout.at(tmp_path).ensure()
    v = queue.View(layout, min_age_s=0.0)
    v.refresh(now=0.0)
    v.list_s = 0.5                   # as if a listing took 0.5 s: wait 5 s between listings
    put(layout, 1)
    v.invalidate()
    v.refresh(now=4.0)
    assert len(v) == 0
    v.refresh(now=5.0)
    assert len(v) == 1


def test_entry_taken_elsewhere_is_dropped(tmp_path):
    layout = Layout.at(tmp_path).ensure()
    put(layout, 1)
    v = queue.View(layout)
    v.refresh(force=True)
    (name,) = v.names
    assert queue.take(layout, name) is not None      # another node wins it
    assert queue.read(layout, name) is None and queue.take(layout, name) is None
    v.discard(name)
    assert len(v) == 0
