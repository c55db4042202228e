"""SM2 verification off the event loop, in parallel.

An SM2 verification costs about 0.6 ms of CPU (gmssl_pyx), and gmssl_pyx holds the GIL while
it runs (measured: two threads verify no faster than one), so threads do not help. A batch of
signed check-ins is split over a pool of worker processes instead; the caller's event loop
keeps reading MQTT and writing Kafka meanwhile. Small batches are verified inline: below
``INLINE_MAX`` signatures the round trip to a worker costs more than it saves.

Workers are started with the ``spawn`` method (they inherit no sockets from the bridge) when
the first signature arrives, in the background: until they are ready (a second or two),
batches are verified inline, and a bridge that never sees a signature never starts them. Each worker watches its parent and exits when it is gone (a bridge killed
with SIGKILL leaves no workers behind).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from gm.algorithms import verify_sm2

__all__ = ["INLINE_MAX", "Sm2Pool", "Triple", "verify_chunk"]

INLINE_MAX = 8
CHUNK = 64  # verifications per task handed to a worker
Triple = tuple[str, bytes, str]  # (public key hex, signed bytes, signature hex)


def verify_chunk(triples: Sequence[Triple]) -> list[bool]:
    return [verify_sm2(pub, data, sig) for pub, data, sig in triples]


def _warm(_n: int = 0) -> int:
    return os.getpid()


def _watch_parent(parent: int) -> None:
    """Worker initializer: exit as soon as the parent process is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class Sm2Pool:
    """``await pool.verify_many(triples)`` -> one bool per triple, in order."""

    def __init__(self, workers: int | None = None) -> None:
        n = workers if workers is not None else min(4, os.cpu_count() or 1)
        self.workers = max(0, n)
        self._executor: ProcessPoolExecutor | None = None
        self._warming: list[Future[int]] = []
        self.verified = 0
        self.busy_s = 0.0

    def start(self, *, warm: bool = False) -> None:
        """Create the pool. Its processes start with the first signature to verify (in the
        background: until they are ready, batches are verified inline), or now with
        ``warm`` (waiting for them)."""
        if self.workers and self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=mp.get_context("spawn"),
                initializer=_watch_parent,
                initargs=(os.getpid(),),
            )
            if warm:
                self._spawn()
                for fut in self._warming:
                    fut.result()

    def _spawn(self) -> None:
        if self._executor is not None and not self._warming:
            self._warming = [self._executor.submit(_warm, i) for i in range(self.workers)]

    @property
    def ready(self) -> bool:
        return (
            self._executor is not None
            and bool(self._warming)
            and all(f.done() for f in self._warming)
        )

    async def verify_many(self, triples: Sequence[Triple]) -> list[bool]:
        if not triples:
            return []
        self._spawn()
        started = time.perf_counter()
        if not self.ready or len(triples) <= INLINE_MAX:
            out = verify_chunk(triples)
        else:
            loop = asyncio.get_running_loop()
            size = max(CHUNK, -(-len(triples) // (4 * self.workers)))
            chunks = [list(triples[i : i + size]) for i in range(0, len(triples), size)]
            parts = await asyncio.gather(
                *(loop.run_in_executor(self._executor, verify_chunk, c) for c in chunks)
            )
            out = [ok for part in parts for ok in part]
        self.verified += len(triples)
        self.busy_s += time.perf_counter() - started
        return out

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def pool_rate(n: int = 4000, workers: int | None = None, batch: int = 500) -> float:
    """SM2 verifications per second through :class:`Sm2Pool` (``workers=0``: inline)."""
    from gm.algorithms import canonical_bytes, generate_sm2_keypair, sign_sm2

    priv, pub = generate_sm2_keypair()
    triples = []
    for k in range(50):
        data = canonical_bytes({"msg_id": f"b{k}", "engineer_id": "E1", "ts": 1.7e9 + k})
        triples.append((pub, data, sign_sm2(priv, data, public_key_hex=pub)))
    work = [triples[k % len(triples)] for k in range(n)]
    pool = Sm2Pool(workers)
    pool.start(warm=True)

    async def run() -> float:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(pool.verify_many(work[i : i + batch]) for i in range(0, n, batch))
        )
        assert all(all(r) for r in results)
        return n / (time.perf_counter() - started)

    try:
        return asyncio.run(run())
    finally:
        pool.close()
