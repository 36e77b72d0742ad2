import os
import time

import pytest

from orze.store import claims
from orze.store.atomic import create_exclusive
from orze.store.claims import Claim


@pytest.mark.parametrize("method", ["excl", "link"])
def test_exclusive_create_has_one_winner(tmp_path, method):
    target = tmp_path / "claim"
    results = [create_exclusive(target, f"{i}".encode(), method) for i in range(5)]
    assert results == [True, False, False, False, False]
    assert target.read_text() == "0"
    assert [p.name for p in tmp_path.iterdir()] == ["claim"]  # link method cleans its unique file


@pytest.mark.parametrize("method", ["excl", "link"])
def test_claim_lease_and_break(tmp_path, method):
    c = Claim(node="n1", slot=0, pid=os.getpid(), attempt=1, claimed_at=time.time())
    assert claims.claim(tmp_path, c, method)
    assert not claims.claim(tmp_path, c, method)
    assert claims.read_claim(tmp_path).node == "n1"
    assert claims.lease_age(tmp_path) < 5
    old = time.time() - 500
    os.utime(tmp_path / "heartbeat", (old, old))
    assert claims.lease_age(tmp_path) > 400  # judged by the filesystem's clock
    assert claims.break_claim(tmp_path) is True
    assert claims.break_claim(tmp_path) is False  # exactly one breaker wins
    assert claims.read_claim(tmp_path) is None
