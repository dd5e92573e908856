"""A sorted index of ``(key, contact id)`` pairs: search ranges and sorts over a million contacts.

A list of sorted chunks (the layout of ``sortedcontainers.SortedList``, without the dependency):
insert and remove cost a bisect and a short memmove, a range is found with two bisects, and
counting a range needs no walk over its members.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator

Entry = tuple[int, int]
"""``(key, contact id)``; ids are positive, so ``(key, 0)`` sorts before every entry of ``key``."""

_LOAD = 512


class SortedIndex:
    """Entries kept in order; ranges are half-open ``[lo, hi)`` over keys."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self._chunks: list[list[Entry]] = []
        self._maxes: list[Entry] = []
        self._len = 0
        self.rebuild(entries)

    def rebuild(self, entries: Iterable[Entry]) -> None:
        """Replace the content (faster than adding a large number of entries one by one)."""
        ordered = sorted(entries)
        self._chunks = [ordered[i : i + _LOAD] for i in range(0, len(ordered), _LOAD)]
        self._maxes = [chunk[-1] for chunk in self._chunks]
        self._len = len(ordered)

    def __len__(self) -> int:
        return self._len

    def add(self, entry: Entry) -> None:
        """Insert an entry (not already present)."""
        if not self._chunks:
            self._chunks.append([entry])
            self._maxes.append(entry)
            self._len = 1
            return
        i = bisect_left(self._maxes, entry)
        if i == len(self._maxes):
            i -= 1
            self._chunks[i].append(entry)
            self._maxes[i] = entry
        else:
            insort(self._chunks[i], entry)
        self._len += 1
        chunk = self._chunks[i]
        if len(chunk) > 2 * _LOAD:
            self._chunks[i : i + 1] = [chunk[:_LOAD], chunk[_LOAD:]]
            self._maxes[i : i + 1] = [chunk[_LOAD - 1], chunk[-1]]

    def remove(self, entry: Entry) -> None:
        """Remove an entry; KeyError if it is not there."""
        i = bisect_left(self._maxes, entry)
        if i == len(self._maxes):
            raise KeyError(entry)
        chunk = self._chunks[i]
        j = bisect_left(chunk, entry)
        if chunk[j] != entry:
            raise KeyError(entry)
        del chunk[j]
        self._len -= 1
        if not chunk:
            del self._chunks[i]
            del self._maxes[i]
        elif j == len(chunk):
            self._maxes[i] = chunk[-1]

    def _position(self, key: int) -> tuple[int, int]:
        """(chunk, offset) of the first entry whose key is ``>= key``."""
        probe = (key, 0)
        i = bisect_left(self._maxes, probe)
        if i == len(self._maxes):
            return i, 0
        return i, bisect_left(self._chunks[i], probe)

    def count(self, lo: int | None, hi: int | None) -> int:
        """How many entries have ``lo <= key < hi`` (``None`` is unbounded)."""
        if lo is not None and hi is not None and lo >= hi:
            return 0
        end = self._len if hi is None else self._rank(hi)
        return end - (0 if lo is None else self._rank(lo))

    def _rank(self, key: int) -> int:
        i, j = self._position(key)
        # Summing chunk lengths is a walk over ~n/512 small ints, cheap next to any search.
        return sum(len(c) for c in self._chunks[:i]) + j

    def range(self, lo: int | None, hi: int | None, *, reverse: bool = False) -> Iterator[int]:
        """Contact ids with ``lo <= key < hi``, by key then id (reversed if asked)."""
        if self._len == 0 or (lo is not None and hi is not None and lo >= hi):
            return iter(())
        if reverse:
            return self._range_reversed(lo, hi)
        return self._range_forward(lo, hi)

    def _range_forward(self, lo: int | None, hi: int | None) -> Iterator[int]:
        ci, j = self._position(lo) if lo is not None else (0, 0)
        for chunk in self._chunks[ci:]:
            for entry in chunk[j:] if j else chunk:
                if hi is not None and entry[0] >= hi:
                    return
                yield entry[1]
            j = 0

    def _range_reversed(self, lo: int | None, hi: int | None) -> Iterator[int]:
        if hi is None:
            ci, j = len(self._chunks) - 1, len(self._chunks[-1])
        else:
            ci, j = self._position(hi)
            if ci == len(self._chunks):
                ci, j = ci - 1, len(self._chunks[-1])
        while ci >= 0:
            chunk = self._chunks[ci]
            for k in range(j - 1, -1, -1):
                entry = chunk[k]
                if lo is not None and entry[0] < lo:
                    return
                yield entry[1]
            ci -= 1
            if ci >= 0:
                j = len(self._chunks[ci])
