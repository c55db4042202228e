"""Poison isolation for the agents: a batch whose write fails on something its data causes is
halved until the records that fail alone are found; those are set aside as dead letters and
every other record is written. A poison record costs itself only, never its partition.

Errors of the database being away are not poison: they propagate to store.retry, which waits
them out and writes the batch again (every sink is idempotent)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from store.retry import is_poison


class Halvable(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, part: slice, /) -> Any: ...


B = TypeVar("B", bound=Halvable)


async def write_isolating(
    batch: B,
    write: Callable[[B], Awaitable[None]],
    set_aside: Callable[[B, BaseException], Awaitable[None]],
) -> int:
    """`write(batch)`; on a poison error, halve and retry, and `set_aside` each single record
    that still fails. Returns how many records were set aside."""
    try:
        await write(batch)
        return 0
    except Exception as exc:
        if not is_poison(exc):
            raise
        if len(batch) <= 1:
            await set_aside(batch, exc)
            return len(batch)
    half = len(batch) // 2
    return await write_isolating(batch[:half], write, set_aside) + await write_isolating(
        batch[half:], write, set_aside
    )
