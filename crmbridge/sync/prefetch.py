"""Reading the next page while the engine works on this one.

A connector's page generator runs in a background thread ``depth`` pages ahead, so the network's
latency overlaps the engine's work instead of adding to it. Pages still arrive in order, each with
its own cursor, so nothing about at-least-once delivery changes; an exception in the reader is
raised where the page would have been; stopping early stops the reader.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(pages: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yield ``pages`` in order, reading up to ``depth`` of them ahead in a background thread."""
    if depth <= 0:
        yield from pages
        return
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def read() -> None:
        iterator = iter(pages)
        try:
            for page in iterator:
                while not stop.is_set():
                    try:
                        slots.put(page, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            slots.put(_Failed(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    reader = threading.Thread(target=read, name="crmbridge-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while reader.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                reader.join(timeout=0.05)
