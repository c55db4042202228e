"""What `sitewatch score` reads of the registry's work: the training credits
(`GET /api/trainings/{id}`) and each project's dossier (`GET /api/projects/{id}/dossier`), and
how they compare with the ground truth."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from simulators.registry import check


def prf(tp: int, fp: int, fn: int) -> dict[str, Any]:
    return {
        "expected": tp + fn,
        "reported": tp + fp,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "precision": 1.0 if tp + fp == 0 else round(tp / (tp + fp), 4),
        "recall": 1.0 if tp + fn == 0 else round(tp / (tp + fn), 4),
    }


def fetch_trainings(api: httpx.Client, run: dict[str, Any]) -> dict[str, list[str]]:
    """The engineers credited for each of the run's trainings (repeats kept)."""
    out = {}
    for training_id in run.get("trainings", []):
        t = check(api.get(f"/api/trainings/{training_id}"), f"training {training_id}")
        out[training_id] = [a["engineer_id"] for a in t.get("attendees", [])]
    return out


def fetch_dossiers(api: httpx.Client, run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per project of the run: the dossier's days without a log per engineer and its open
    notices, over the simulated days (runs of more than 400 days are not read)."""
    first, last = run["dates"][0], run["dates"][-1]
    if (dt.date.fromisoformat(last) - dt.date.fromisoformat(first)).days >= 400:
        return {}
    out = {}
    for project_id in run["projects"]:
        doc = check(
            api.get(f"/api/projects/{project_id}/dossier", params={"from": first, "to": last}),
            f"the dossier of {project_id}",
        )
        out[project_id] = {
            "days_without_log": {
                e["engineer_id"]: e["days_without_log"]
                for e in doc["engineers"]
                if e["days_without_log"]
            },
            "open_notices": sorted(doc["open_notices"]),
        }
    return out


def score_trainings(truth: dict[str, Any], credited: dict[str, list[str]]) -> dict[str, Any]:
    want = {(t, e) for t, ids in truth.get("trainings", {}).items() for e in ids}
    got = {(t, e) for t, ids in credited.items() for e in ids}
    twice = sum(len(ids) - len(set(ids)) for ids in credited.values())
    return {
        **prf(len(want & got), len(got - want), len(want - got)),
        "credited_twice": twice,
        "examples": {
            "false_positives": sorted(got - want)[:5],
            "false_negatives": sorted(want - got)[:5],
        },
    }


def score_dossiers(truth: dict[str, Any], dossiers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every project's days without a log, per engineer, and its open notices, exactly as the
    truth has them."""
    # the run's projects (its engineers' days at other runs' projects are those dossiers')
    days = {p: d for p, d in truth.get("days_without_log", {}).items() if p in dossiers}
    notices: dict[str, list[str]] = truth.get("open_notices", {})
    mismatched = [
        {"project_id": p, "expected": {"days": days.get(p, {}), "open": notices.get(p, [])}}
        | {"dossier": got}
        for p, got in sorted(dossiers.items())
        if got["days_without_log"] != days.get(p, {}) or got["open_notices"] != notices.get(p, [])
    ]
    return {
        "projects": len(dossiers),
        "days_expected": sum(len(d) for e in days.values() for d in e.values()),
        "days_in_dossiers": sum(
            len(d) for got in dossiers.values() for d in got["days_without_log"].values()
        ),
        "open_notices_expected": sum(len(n) for n in notices.values()),
        "open_notices_in_dossiers": sum(len(got["open_notices"]) for got in dossiers.values()),
        "mismatched": len(mismatched),
        "examples": mismatched[:3],
    }
