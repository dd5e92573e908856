"""Reading ahead: pages keep their order, errors arrive where the page would have, and an early
stop stops the reader."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from crmbridge.sync.prefetch import prefetch


def test_pages_arrive_in_order_and_the_next_is_read_during_the_work() -> None:
    read = [threading.Event() for _ in range(5)]

    def pages() -> Iterator[int]:
        for i in range(5):
            read[i].set()
            yield i

    seen = []
    for page in prefetch(pages(), depth=1):
        if page < 4:
            # while the engine works on this page, the next one is read
            assert read[page + 1].wait(5), f"page {page + 1} was not read ahead"
        seen.append(page)
    assert seen == [0, 1, 2, 3, 4]


def test_a_readers_error_is_raised_where_the_page_would_be() -> None:
    def pages() -> Iterator[int]:
        yield 1
        raise ConnectionError("dropped")

    got: list[int] = []
    with pytest.raises(ConnectionError, match="dropped"):
        got.extend(prefetch(pages()))
    assert got == [1]


def test_stopping_early_stops_and_closes_the_reader() -> None:
    closed = threading.Event()

    def pages() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    for page in prefetch(pages(), depth=2):
        if page == 3:
            break
    assert closed.wait(2), "the reader kept reading after the consumer stopped"


def test_depth_zero_reads_in_line() -> None:
    assert list(prefetch(iter([1, 2, 3]), depth=0)) == [1, 2, 3]
