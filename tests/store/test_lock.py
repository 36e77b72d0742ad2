import json
import os
import threading
import time

from orze.store.lock import FileLock


def test_mutual_exclusion_across_threads(tmp_path):
    lock_path = tmp_path / "l.lock"
    inside, violations = [0], [0]

    def work():
        for _ in range(30):
            with FileLock(lock_path, poll=0.001):
                inside[0] += 1
                if inside[0] > 1:
                    violations[0] += 1
                time.sleep(0.0005)
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert violations[0] == 0 and not lock_path.exists()


def test_stale_lock_of_a_dead_holder_is_broken(tmp_path):
    lock_path = tmp_path / "l.lock"
    lock_path.write_text(json.dumps({"owner": "dead:1:x"}))
    old = time.time() - 1000
    os.utime(lock_path, (old, old))
    with FileLock(lock_path, timeout=5, stale_after=10):
        assert json.loads(lock_path.read_text())["owner"] != "dead:1:x"
    assert not lock_path.exists()


def test_release_never_removes_another_holders_lock(tmp_path):
    lock_path = tmp_path / "l.lock"
    a = FileLock(lock_path)
    a.acquire()
    os.unlink(lock_path)  # a's lock was broken as stale...
    b = FileLock(lock_path)
    b.acquire()           # ...and b took it
    a.release()           # a's late release must leave b's lock in place
    assert json.loads(lock_path.read_text())["owner"] == b.token
    b.release()
    assert not lock_path.exists()
