"""Deterministic steady load for fault tests and `make soak`, and the exact reconciliation.

A `Plan` is a pure function from (engineer index, sequence number) to a check-in: ~100
engineers walk around a Shenzhen site, and a few of them trigger known alerts:

- every engineer with ``k % 10 == 0`` is registered in Beijing and works in Shenzhen without a
  filing: one ``cross_region_unfiled`` alert;
- ``k % 10 == 1`` jumps to the Beijing site at ``jump_seq`` and back one fix later: two
  ``impossible_travel`` alerts and a ``cross_region_unfiled`` at the Beijing site;
- ``k % 10 == 2`` jumps to Shanghai (no site) and back: two ``impossible_travel`` alerts;
- ``k % 10 == 3`` is registered in Beijing but has a filing for Shenzhen: no alert;
- ``k % 10 == 4`` reports one far-away fix with a 500 m accuracy: ignored by the rules.

`expected_alerts(plan)` is what a fault-free run produces (the baseline fault test checks that
on the real stack). Publishers are separate processes (`python -m measure.loadgen publish
CONFIG INDEX`): paho-mqtt, QoS 1, the service identity, a fixed client id and a persistent
session, so a broker restart makes paho resend what was not acknowledged. Each publisher writes
the msg_ids the broker acknowledged (PUBACK received) to `acked-INDEX.txt` at the end, and its
progress to `progress-INDEX.json` every second.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson

SZ = (113.9300, 22.5300)  # project "LOAD-SZ", district 440305
BJ = (116.4000, 39.9000)  # project "LOAD-BJ", district 110105
SH = (121.4700, 31.2300)  # Shanghai, no site
SITE_HALF_SIDE = 0.001  # degrees
PROJECTS = {"LOAD-SZ": (SZ, "440305"), "LOAD-BJ": (BJ, "110105")}
MAX_OUTSTANDING = 20_000  # unacknowledged messages per publisher before it waits


RULE_TYPES = ("impossible_travel", "cross_region_unfiled")  # what a plan triggers


def default_base_ts(days_ago: int = 2, hour: int = 6) -> float:
    """A fixed local morning a few days back: all fixes of a run fall on one local date."""
    tz = ZoneInfo("Asia/Shanghai")
    day = dt.datetime.now(tz).date() - dt.timedelta(days=days_ago)
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=tz).timestamp()


@dataclass(frozen=True)
class Plan:
    """One run's input. Runs on one stack may share engineers (`prefix`); each has its own
    msg_ids (`run`) and its own local date (`base_ts`), so their alerts never mix."""

    prefix: str  # engineer ids are "{prefix}-E{k:03d}"
    run: str  # msg_ids are "{run}-{k:03d}-{j:06d}": unique per run
    base_ts: float
    engineers: int = 100
    per_engineer: int = 150  # fixes per engineer (a publisher may stop earlier: `duration_s`)
    step_s: float = 10.0  # event time between two fixes of one engineer
    jump_seq: int = 75

    def engineer(self, k: int) -> str:
        return f"{self.prefix}-E{k:03d}"

    def msg_id(self, k: int, j: int) -> str:
        return f"{self.run}-{k:03d}-{j:06d}"

    def registered_region(self, k: int) -> str:
        return "110105" if k % 10 in (0, 3) else "440305"

    def position(self, k: int, j: int) -> tuple[float, float, float]:
        """(lon, lat, accuracy m) of fix j of engineer k."""
        cls = k % 10
        if j == self.jump_seq and cls == 1:
            lon, lat = BJ
        elif j == self.jump_seq and cls == 2:
            lon, lat = SH
        elif j == self.jump_seq and cls == 4:
            return SH[0], SH[1], 500.0
        else:
            lon, lat = SZ
        h = (k * 7919 + j * 104729) % 1_000_003
        dx = ((h % 1000) / 1000.0 - 0.5) * SITE_HALF_SIDE
        dy = (((h // 1000) % 1000) / 1000.0 - 0.5) * SITE_HALF_SIDE
        return round(lon + dx, 7), round(lat + dy, 7), 10.0

    def fix(self, k: int, j: int) -> dict[str, Any]:
        lon, lat, acc = self.position(k, j)
        return {
            "msg_id": self.msg_id(k, j),
            "engineer_id": self.engineer(k),
            "ts": self.base_ts + j * self.step_s,
            "lat": lat,
            "lon": lon,
            "acc": acc,
        }

    @property
    def end_ts(self) -> float:
        return self.base_ts + self.per_engineer * self.step_s

    def local_date(self) -> str:
        return dt.datetime.fromtimestamp(self.base_ts, ZoneInfo("Asia/Shanghai")).date().isoformat()


def expected_alerts(
    plan: Plan, fixes_per_engineer: int | Mapping[int, int] | None = None
) -> set[str]:
    """Alert ids of a fault-free run of `plan` (engineer k sent `fixes_per_engineer` fixes, or
    `fixes_per_engineer[k]`): cross-region alerts once per engineer, site and local date, two
    impossible-travel alerts per jump."""
    tz = ZoneInfo("Asia/Shanghai")

    def sent_by(k: int) -> int:
        if fixes_per_engineer is None:
            return plan.per_engineer
        if isinstance(fixes_per_engineer, int):
            return fixes_per_engineer
        return fixes_per_engineer.get(k, 0)

    def day(j: int) -> str:
        return dt.datetime.fromtimestamp(plan.base_ts + j * plan.step_s, tz).date().isoformat()

    j = plan.jump_seq
    out: set[str] = set()
    for k in range(plan.engineers):
        n = sent_by(k)
        e = plan.engineer(k)
        cls = k % 10
        if cls == 0 and n:
            # the local dates of fixes 0 .. n-1: every day boundary crossed, and the last day
            first, last = day(0), day(n - 1)
            d = dt.date.fromisoformat(first)
            while d.isoformat() <= last:
                out.add(f"cross_region_unfiled:{e}:LOAD-SZ:{d.isoformat()}")
                d += dt.timedelta(days=1)
        if cls in (1, 2) and n > j:
            out.add(f"impossible_travel:{e}:travel:{plan.msg_id(k, j - 1)}:{plan.msg_id(k, j)}")
            if n > j + 1:
                out.add(f"impossible_travel:{e}:travel:{plan.msg_id(k, j)}:{plan.msg_id(k, j + 1)}")
            if cls == 1:
                out.add(f"cross_region_unfiled:{e}:LOAD-BJ:{day(j)}")
    return out


def sent_per_engineer(plan: Plan, acked: Iterable[str]) -> dict[int, int]:
    """Per engineer index, one more than the highest fix sequence acknowledged (fixes go out in
    sequence per engineer, so that is how many it sent)."""
    sent: dict[int, int] = {}
    prefix = plan.run + "-"
    for msg_id in acked:
        if msg_id.startswith(prefix):
            k, j = msg_id[len(prefix) :].split("-")
            sent[int(k)] = max(sent.get(int(k), 0), int(j) + 1)
    return sent


def normalise(alert_ids: set[str], plan: Plan) -> set[str]:
    """Alert ids with the run's own msg_id tag and date replaced: comparable across runs."""
    return {a.replace(plan.run, "RUN").replace(plan.local_date(), "DATE") for a in alert_ids}


# --- registration ------------------------------------------------------------------------


def _square(lon: float, lat: float, d: float) -> list[list[list[float]]]:
    return [
        [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d]]
        + [[lon - d, lat - d]]
    ]


def register_projects(http: str, admin_token: str) -> None:
    """The two sites of every plan (idempotent: 409 means already there)."""
    with httpx.Client(
        base_url=http, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60
    ) as api:
        for pid, ((lon, lat), region) in PROJECTS.items():
            feature = {
                "type": "Feature",
                "properties": {"id": pid, "name": f"load site {pid}", "region_code": region},
                "geometry": {"type": "Polygon", "coordinates": _square(lon, lat, SITE_HALF_SIDE)},
            }
            r = api.post("/api/projects", json=feature)
            if r.status_code not in (201, 409):
                raise RuntimeError(f"POST /api/projects {pid}: {r.status_code} {r.text}")


def register_engineers(http: str, admin_token: str, plan: Plan, threads: int = 6) -> None:
    """The plan's engineers (idempotent); class-3 engineers get a Shenzhen filing that covers
    the 60 days before and after the plan's date."""
    day = dt.date.fromisoformat(plan.local_date())

    def one(k: int) -> None:
        with httpx.Client(
            base_url=http, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60
        ) as api:
            r = api.post(
                "/api/engineers",
                json={
                    "id": plan.engineer(k),
                    "name": f"负载 {k}",
                    "registered_region": plan.registered_region(k),
                    "cert_status": "valid",
                },
            )
            if r.status_code not in (201, 409):
                raise RuntimeError(f"POST /api/engineers: {r.status_code} {r.text}")
            if k % 10 == 3:
                r = api.post(
                    "/api/filings",
                    json={
                        "engineer_id": plan.engineer(k),
                        "region_code": "440300",
                        "valid_from": (day - dt.timedelta(days=60)).isoformat(),
                        "valid_to": (day + dt.timedelta(days=60)).isoformat(),
                    },
                )
                if r.status_code != 201:
                    raise RuntimeError(f"POST /api/filings: {r.status_code} {r.text}")

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(plan.engineers)))


# --- publishers ----------------------------------------------------------------------------


@dataclass
class LoadConfig:
    plan: Plan
    mqtt_host: str
    mqtt_port: int
    username: str
    password: str
    out_dir: str
    rate: float = 1200.0  # fixes/s over all publishers
    processes: int = 3
    duration_s: float | None = None  # stop publishing after this long (soak), else the plan
    drain_timeout_s: float = 180.0  # how long a publisher waits for outstanding PUBACKs

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "plan": asdict(self.plan)})

    @classmethod
    def from_json(cls, text: str) -> LoadConfig:
        d = json.loads(text)
        d["plan"] = Plan(**d["plan"])
        return cls(**d)


def _sequence(plan: Plan, mine: list[int]) -> Iterator[tuple[int, int]]:
    for j in range(plan.per_engineer):
        for k in mine:
            yield k, j


def publish_main(cfg: LoadConfig, index: int) -> int:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    plan = cfg.plan
    out = Path(cfg.out_dir)
    mine = [k for k in range(plan.engineers) if k % cfg.processes == index]
    acked_n = [0]
    connects = [0]
    lock = threading.Lock()

    def on_publish(*_: Any) -> None:
        with lock:
            acked_n[0] += 1

    def on_connect(_c: Any, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        connects[0] += 1

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"loadgen-{plan.run}-{index}",
        protocol=mqtt.MQTTv5,
    )
    client.username_pw_set(cfg.username, cfg.password)
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(0.2, 2)
    client.on_publish = on_publish
    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect(cfg.mqtt_host, cfg.mqtt_port, clean_start=False, properties=props, keepalive=10)
    client.loop_start()

    infos: list[tuple[str, Any]] = []
    rate = cfg.rate / cfg.processes
    started = time.monotonic()
    next_progress = started
    stalls = 0.0

    def progress(done: bool = False) -> None:
        tmp = out / f"progress-{index}.tmp"
        tmp.write_text(
            json.dumps(
                {
                    "published": len(infos),
                    "acked": acked_n[0],
                    "connects": connects[0],
                    "elapsed_s": time.monotonic() - started,
                    "stalled_s": stalls,
                    "done": done,
                }
            )
        )
        tmp.replace(out / f"progress-{index}.json")

    for n, (k, j) in enumerate(_sequence(plan, mine)):
        now = time.monotonic()
        if cfg.duration_s is not None and now - started >= cfg.duration_s:
            break
        due = started + n / rate
        if due > now:
            time.sleep(due - now)
        while len(infos) - acked_n[0] > MAX_OUTSTANDING:  # broker away: do not queue forever
            time.sleep(0.05)
            stalls += 0.05
        fix = plan.fix(k, j)
        info = client.publish(f"sitewatch/checkin/{fix['engineer_id']}", orjson.dumps(fix), qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            raise RuntimeError("paho refused to queue a message")
        infos.append((fix["msg_id"], info))
        if now >= next_progress:
            progress()
            next_progress = now + 1.0
    published_s = time.monotonic() - started
    deadline = time.monotonic() + cfg.drain_timeout_s
    while time.monotonic() < deadline and not all(_acked(i) for _, i in infos[-500:]):
        time.sleep(0.1)
        progress()
    while time.monotonic() < deadline and not all(_acked(i) for _, i in infos):
        time.sleep(0.2)
        progress()
    acked = [m for m, i in infos if _acked(i)]
    (out / f"acked-{index}.txt").write_text("\n".join(acked) + ("\n" if acked else ""))
    (out / f"summary-{index}.json").write_text(
        json.dumps(
            {
                "published": len(infos),
                "acked": len(acked),
                "publish_s": published_s,
                "connects": connects[0],
                "stalled_s": stalls,
            }
        )
    )
    progress(done=True)
    client.disconnect()
    client.loop_stop()
    return 0


def _acked(info: Any) -> bool:
    """Whether the broker's PUBACK for this message arrived. `MQTTMessageInfo.is_published()`
    raises for a message first published while the connection was down (its `rc` stays
    MQTT_ERR_NO_CONN) even after paho resent it on reconnection and got the PUBACK."""
    with info._condition:
        return bool(info._published)


@dataclass
class Load:
    """Several publisher processes running one `LoadConfig`; started and stopped by pid."""

    cfg: LoadConfig
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started_at: float = 0.0

    def start(self) -> Load:
        out = Path(self.cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "load.json").write_text(self.cfg.to_json())
        self.started_at = time.monotonic()
        for i in range(self.cfg.processes):
            log = open(out / f"publisher-{i}.log", "ab")  # noqa: SIM115 - handed to the child
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "measure.loadgen",
                        "publish",
                        str(out / "load.json"),
                        str(i),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ},
                )
            )
            log.close()
        return self

    def progress(self) -> dict[str, float]:
        total = {"published": 0.0, "acked": 0.0, "connects": 0.0}
        for i in range(self.cfg.processes):
            try:
                d = json.loads((Path(self.cfg.out_dir) / f"progress-{i}.json").read_text())
            except (OSError, ValueError):
                continue
            for key in total:
                total[key] += d.get(key, 0)
        return total

    def wait_published(self, count: int, timeout_s: float = 120.0) -> None:
        """Block until the publishers together sent `count` messages."""
        deadline = time.monotonic() + timeout_s
        while self.progress()["published"] < count:
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"publishers sent {self.progress()} after {timeout_s} s")
            time.sleep(0.1)

    def _check_alive(self) -> None:
        for i, p in enumerate(self.procs):
            if p.poll() not in (None, 0):
                log = Path(self.cfg.out_dir) / f"publisher-{i}.log"
                raise RuntimeError(
                    f"publisher {i} failed ({p.returncode}): {log.read_text()[-2000:]}"
                )

    def wait(self, timeout_s: float = 600.0) -> dict[str, Any]:
        """Wait for every publisher; returns totals (published, acked, publish_s, rate)."""
        deadline = time.monotonic() + timeout_s
        for p in self.procs:
            try:
                p.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stop()
                raise
        self._check_alive()
        total: dict[str, Any] = {"published": 0, "acked": 0, "publish_s": 0.0, "connects": 0}
        for i in range(self.cfg.processes):
            d = json.loads((Path(self.cfg.out_dir) / f"summary-{i}.json").read_text())
            total["published"] += d["published"]
            total["acked"] += d["acked"]
            total["connects"] += d["connects"]
            total["publish_s"] = max(total["publish_s"], d["publish_s"])
        total["rate_per_s"] = total["published"] / max(total["publish_s"], 1e-9)
        return total

    def acked(self) -> set[str]:
        ids: set[str] = set()
        for i in range(self.cfg.processes):
            text = (Path(self.cfg.out_dir) / f"acked-{i}.txt").read_text()
            ids.update(line for line in text.splitlines() if line)
        return ids

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "publish":
        return publish_main(LoadConfig.from_json(Path(argv[1]).read_text()), int(argv[2]))
    print("usage: python -m measure.loadgen publish CONFIG.json INDEX", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
