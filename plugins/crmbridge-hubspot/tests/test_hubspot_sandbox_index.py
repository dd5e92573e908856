"""The sorted index behind search, against a plain sorted list under random inserts and removals."""

from __future__ import annotations

import random

import pytest
from crmbridge_hubspot.sandbox.index import SortedIndex


def reference(entries: set[tuple[int, int]], lo: int | None, hi: int | None) -> list[int]:
    return [
        cid
        for key, cid in sorted(entries)
        if (lo is None or key >= lo) and (hi is None or key < hi)
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_operations_match_a_sorted_list(seed: int) -> None:
    rng = random.Random(seed)
    index = SortedIndex()
    alive: list[tuple[int, int]] = []
    for cid in range(1, 4000):
        entry = (rng.randrange(500), cid)
        index.add(entry)
        alive.append(entry)
        if rng.random() < 0.3:
            gone = alive.pop(rng.randrange(len(alive)))
            index.remove(gone)
    entries = set(alive)
    assert len(index) == len(entries)
    for _ in range(50):
        lo = rng.choice([None, rng.randrange(-10, 510)])
        hi = rng.choice([None, rng.randrange(-10, 510)])
        expected = reference(entries, lo, hi)
        assert list(index.range(lo, hi)) == expected
        assert list(index.range(lo, hi, reverse=True)) == expected[::-1]
        assert index.count(lo, hi) == len(expected)


def test_rebuild_and_removing_what_is_not_there() -> None:
    index = SortedIndex((k % 7, k) for k in range(1, 2000))
    assert list(index.range(3, 4))[:3] == [3, 10, 17]
    assert index.count(None, None) == 1999
    with pytest.raises(KeyError):
        index.remove((9, 9))
    empty = SortedIndex()
    assert list(empty.range(None, None, reverse=True)) == []
    assert empty.count(0, 10) == 0
