"""SM2 verification of a batch: inline, or spread over worker processes for a backlog.

A verification costs about 0.1 ms of CPU with OpenSSL and a repeated key (gm.sm2_openssl;
0.47 ms with gmssl_pyx), and both hold the GIL, so threads do not help. Measured on the
2-core machine (2026-12-06, 6,000 verifications in batches of 500, one key): inline 0.095-0.100
ms of CPU each; through a pool 0.105-0.107 ms (pickling and the round trip), twice the rate
with two workers on idle cores. In steady state a batch of ``INLINE_MAX`` verifications holds
the event loop for about 50 ms, and the bridge's loop has room for that at the rates two cores
carry, so batches up to ``INLINE_MAX`` are verified inline (the cheapest in CPU). Larger batches
come from a backlog (a restart, a burst: up to 4,000 arrivals per batch), where idle cores
drain it faster: those are split over the pool, the caller's event loop keeps reading MQTT and
writing Kafka meanwhile.

Workers are started with the ``spawn`` method (they inherit no sockets from the bridge) when
the first batch larger than ``INLINE_MAX`` arrives, in the background: until they are ready (a
second or two), batches are verified inline, and a bridge that never sees such a batch never
starts them. Each worker watches its parent and exits when it is gone (a bridge killed with
SIGKILL leaves no workers behind).
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

INLINE_MAX = 512
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
        if len(triples) > INLINE_MAX:
            self._spawn()
        started = time.perf_counter()
        if len(triples) <= INLINE_MAX or not self.ready:
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
