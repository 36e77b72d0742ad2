
from orze.layout import Layout
from orze.store import queue
from orze.store.queue import Entry


def entry(i, priority="medium", t=None):
    return Entry(id=f"20260101T000000-{i:015x}", fingerprint=f"fp{i}", config={"x": i},
                 meta={"priority": priority}, admitted_at=t if t is not None else 1000.0 + i)


def test_priority_then_fifo(tmp_path):
    layout = Layout.at(tmp_path).ensure()
    for e in [entry(1, "low"), entry(2, "medium"), entry(3, "critical"), entry(4, "high"),
              entry(5, "medium"), entry(6, "critical", t=2000.0), entry(0, "high", t=999.0)]:
        queue.put(layout, e)
    order = [queue.read(layout, n).id[-1] for n in queue.list_names(layout)]
    assert order == ["3", "6", "0", "4", "2", "5", "1"]


def test_take_is_exclusive_and_moves_into_run_dir(tmp_path):
    layout = Layout.at(tmp_path).ensure()
    queue.put(layout, entry(7))
    name = queue.list_names(layout)[0]
    first = queue.take(layout, name)
    assert first is not None and first.id.endswith("7")
    assert queue.take(layout, name) is None
    assert queue.depth(layout) == 0
    assert (layout.run_dir(first.id) / "idea.json").exists()


def test_requeue_restores_entry(tmp_path):
    layout = Layout.at(tmp_path).ensure()
    queue.put(layout, entry(8, "high"))
    e = queue.take(layout, queue.list_names(layout)[0])
    e.attempts = 1
    queue.requeue(layout, e)
    back = queue.read(layout, queue.list_names(layout)[0])
    assert back.id == e.id and back.attempts == 1 and back.priority == "high"
    assert not (layout.run_dir(e.id) / "idea.json").exists()
