"""How the embedded broker's fetch cost grows with a partition's log (docs/reliability.md).

    python -m stack.broker_probe [--rounds 9] [--batch-records 5] [--value-bytes 300]

Starts a private tansu, then per round appends 5,000 record batches to one partition and
reads the last 2,500 records back, printing the wall time and tansu's CPU time of both.
tansu's in-memory storage keeps every record batch (no retention) and a fetch costs more as
their number grows; past roughly 30,000 batches in a partition one fetch takes seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stack.processes import Supervisor
from stack.restart import cpu_seconds as cpu_s
from stack.services import start_tansu

BATCHES_PER_ROUND = 5000
READ_BACK = 2500


async def probe(bootstrap: str, pid: int, rounds: int, per_batch: int, value_bytes: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic("probe", num_partitions=1, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=-1)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20
    )
    await producer.start()
    await consumer.start()
    tp = TopicPartition("probe", 0)
    consumer.assign([tp])
    value, records, batches = b"x" * value_bytes, 0, 0
    try:
        for _ in range(rounds):
            t0, c0 = time.monotonic(), cpu_s(pid)
            for _ in range(BATCHES_PER_ROUND):
                batch = producer.create_batch()
                for _ in range(per_batch):
                    batch.append(key=b"k", value=value, timestamp=None)
                batch.close()
                await (await producer.send_batch(batch, "probe", partition=0))
            records += BATCHES_PER_ROUND * per_batch
            batches += BATCHES_PER_ROUND
            t1, c1 = time.monotonic(), cpu_s(pid)
            consumer.seek(tp, records - READ_BACK)
            got = 0
            while got < READ_BACK:
                fetched = await consumer.getmany(timeout_ms=500)
                got += sum(len(v) for v in fetched.values())
            t2, c2 = time.monotonic(), cpu_s(pid)
            print(
                f"{batches:>7} batches ({records:>8} records): append {t1 - t0:6.2f} s "
                f"(tansu CPU {c1 - c0:6.2f} s); read last {READ_BACK} {t2 - t1:7.2f} s "
                f"(tansu CPU {c2 - c1:7.2f} s)",
                flush=True,
            )
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--batch-records", type=int, default=5)
    ap.add_argument("--value-bytes", type=int, default=300)
    args = ap.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="sitewatch-broker-probe-"))
    sup = Supervisor(data_dir / "logs")
    try:
        kafka = start_tansu(sup)
        asyncio.run(
            probe(kafka.url, kafka.child.pid, args.rounds, args.batch_records, args.value_bytes)
        )
    finally:
        sup.stop_all()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
