"""Talking to a running SiteWatch for the simulators: endpoints, the admin token, registering
projects, engineers, filings and devices through the public API (CONTRACT section 2)."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import shapely.affinity
from shapely.geometry import MultiPolygon, Polygon, shape

from simulators.world import M_PER_DEG_LAT, metres_per_deg_lon


class RegistryError(RuntimeError):
    """The API refused a registration (the message says what and why)."""


def load_endpoints(data_dir: Path) -> tuple[dict[str, Any], str]:
    """``endpoints.json`` and ``admin.token`` written by ``sitewatch up`` into its data dir."""
    ep_file, token_file = data_dir / "endpoints.json", data_dir / "admin.token"
    if not ep_file.exists():
        raise SystemExit(
            f"{ep_file} not found: start the monitor with `sitewatch up --data-dir {data_dir}` "
            "(or pass --data-dir of a running one)"
        )
    endpoints = json.loads(ep_file.read_text())
    token = token_file.read_text().strip() if token_file.exists() else ""
    return endpoints, token


def api_client(endpoints: Mapping[str, Any], token: str, timeout: float = 120.0) -> httpx.Client:
    return httpx.Client(
        base_url=str(endpoints["http"]),
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout,
    )


def check(r: httpx.Response, what: str, ok: tuple[int, ...] = (200, 201)) -> Any:
    if r.status_code not in ok:
        raise RegistryError(f"{what}: HTTP {r.status_code} {r.text[:300]}")
    return r.json() if r.content else None


def post(api: httpx.Client, path: str, body: Any, what: str, attempts: int = 25) -> Any:
    """POST and check; a 422 saying something must be registered first is retried for a few
    seconds: the API may answer before the row it depends on (created by the previous call)
    is committed."""
    for _ in range(attempts - 1):
        r = api.post(path, json=body)
        if not (r.status_code == 422 and "first" in r.text):
            return check(r, what)
        time.sleep(0.2)
    return check(api.post(path, json=body), what)


def wait_visible(api: httpx.Client, paths: list[str], timeout_s: float = 30.0) -> None:
    """GET each path until it answers 200 (registrations committed)."""
    deadline = time.monotonic() + timeout_s
    for path in paths:
        while api.get(path).status_code != 200:
            if time.monotonic() > deadline:
                raise RegistryError(f"{path} still not visible after {timeout_s} s")
            time.sleep(0.2)


def buffered(poly: Polygon | MultiPolygon, metres: float) -> Any:
    """Grow (or shrink) a lon/lat polygon by ``metres`` in a local flat approximation."""
    if not metres:
        return poly
    c = poly.centroid
    k = metres_per_deg_lon(c.y) / M_PER_DEG_LAT
    scaled = shapely.affinity.scale(poly, xfact=k, yfact=1.0, origin=c)
    grown = scaled.buffer(metres / M_PER_DEG_LAT)
    return shapely.affinity.scale(grown, xfact=1 / k, yfact=1.0, origin=c)


# (id, region_code, WGS-84 geometry incl. its buffer, valid_from, valid_to): one boundary of
# a project the monitor judges fixes against, for the event times in [valid_from, valid_to)
ForeignFence = tuple[str, str, Any, float, float]


def existing_projects(api: httpx.Client) -> list[ForeignFence]:
    """The boundaries of every project the monitor judges fixes against (not retired, not
    suspended): its boundary for all time, or each boundary of a revised one for its time."""
    fc = check(api.get("/api/projects"), "listing projects")
    revised = {
        f.get("id")
        for f in check(api.get("/api/projects?revised=true"), "listing projects")["features"]
    }
    out: list[ForeignFence] = []
    for f in fc.get("features", []):
        props = f.get("properties") or {}
        if props.get("retired_at") or props.get("status") == "suspended":
            continue  # no fence at the monitor: fixes there are on no site
        project_id = str(props.get("id") or f.get("id"))
        region, buffer_m = str(props.get("region_code") or ""), float(props.get("buffer_m") or 0.0)
        spans = [(f["geometry"], None, None)]
        if project_id in revised:
            history = check(api.get(f"/api/projects/{project_id}/boundaries"), "boundaries")
            spans = [(b["geometry"], b["valid_from"], b["valid_to"]) for b in history]
        for geometry, valid_from, valid_to in spans:
            try:
                geom = buffered(shape(geometry), buffer_m)
            except Exception:  # noqa: BLE001 - a project we cannot read cannot be avoided either
                continue
            out.append(
                (
                    project_id,
                    region,
                    geom,
                    _epoch(valid_from, -math.inf),
                    _epoch(valid_to, math.inf),
                )
            )
    return out


def _epoch(iso: str | None, unbounded: float) -> float:
    return unbounded if iso is None else dt.datetime.fromisoformat(iso).timestamp()
