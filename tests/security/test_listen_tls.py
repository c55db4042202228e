"""`sitewatch up --listen 127.0.0.2` (the session stack is started so): the three phone paths
deliver a fix end to end over TLS on the public address, verified against the private CA, and
a plain attempt on that address fails."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from stack.up import Stack
from tests.ingest_stack.helpers import LAT, LON, registration, tag, wait_fixes
from tests.stack_client import StackClient

PUBLIC = "127.0.0.2"


@pytest.fixture(scope="module")
def public(running_stack: Stack) -> dict[str, str]:
    ep = running_stack.endpoints
    assert ep["mqtts_host"] == PUBLIC and ep["https"].startswith(f"https://{PUBLIC}:")
    return {"https": ep["https"], "mqtts_port": str(ep["mqtts_port"]), "ca": ep["ca_file"]}


def _refused(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(5)
        return s.connect_ex((host, port)) != 0


def test_owntracks_over_mqtt_with_tls(sw: StackClient, public: dict[str, str]) -> None:
    eid = f"TLS-OM-{tag()}"
    password = str(registration(sw, eid)["mqtt_password"])
    tst = int(time.time()) - 30
    fix = {"_type": "location", "lat": LAT, "lon": LON, "tst": tst, "acc": 8, "tid": "tl"}
    pub = ["mosquitto_pub", "-h", PUBLIC, "-p", public["mqtts_port"], "-q", "1", "-u", eid]
    pub += ["-P", password, "-t", f"owntracks/{eid}/phone", "-m", json.dumps(fix)]
    plain = subprocess.run(pub, capture_output=True, text=True, timeout=30)
    assert plain.returncode != 0, "a plain MQTT connection to the TLS listener was taken"
    done = subprocess.run([*pub, "--cafile", public["ca"]], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert wait_fixes(sw, eid, {f"ot:{eid}:phone:{tst}"}) == {f"ot:{eid}:phone:{tst}": 1}


def test_owntracks_http_with_basic_auth_over_https(sw: StackClient, public: dict[str, str]) -> None:
    eid = f"TLS-OH-{tag()}"
    password = str(registration(sw, eid)["mqtt_password"])
    tst = int(time.time()) - 30
    fix = {"_type": "location", "lat": LAT, "lon": LON, "tst": tst, "acc": 9}
    headers = {"X-Limit-U": eid, "X-Limit-D": "phone"}
    with httpx.Client(verify=ssl.create_default_context(cafile=public["ca"]), timeout=30) as c:
        r = c.post(public["https"] + "/owntracks", json=fix, headers=headers, auth=(eid, password))
    assert r.status_code == 200, r.text
    assert wait_fixes(sw, eid, {f"ot:{eid}:phone:{tst}"}) == {f"ot:{eid}:phone:{tst}": 1}


def test_osmand_with_a_phone_id_over_https(sw: StackClient, public: dict[str, str]) -> None:
    eid = f"TLS-OS-{tag()}"
    phone = registration(sw, eid)["osmand_id"]
    t = int(time.time()) - 30
    query = {"id": phone, "lat": LAT, "lon": LON, "timestamp": t, "accuracy": 5}
    with httpx.Client(verify=ssl.create_default_context(cafile=public["ca"]), timeout=30) as c:
        r = c.get(public["https"] + "/osmand", params=query)
    assert r.status_code == 200, r.text
    msg = f"osmand:{eid}:{t * 1000}"
    assert wait_fixes(sw, eid, {msg}) == {msg: 1}


def test_plain_http_and_unknown_certificates_fail_on_the_public_address(
    sw: StackClient, public: dict[str, str]
) -> None:
    https_port = int(public["https"].rsplit(":", 1)[1])
    with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port: no HTTP answer
        httpx.get(f"http://{PUBLIC}:{https_port}/healthz", timeout=10)
    with pytest.raises(httpx.ConnectError):  # the system's CAs do not know the private one
        httpx.get(public["https"] + "/healthz", timeout=10)
    # the plain listeners are on loopback 127.0.0.1 only
    http_port = int(sw.http.rsplit(":", 1)[1])
    assert _refused(PUBLIC, http_port)
    assert _refused(PUBLIC, int(sw.endpoints["mqtt_port"]))
    assert httpx.get(sw.http + "/healthz", timeout=10).status_code == 200


def test_metrics_only_on_loopback(sw: StackClient, public: dict[str, str]) -> None:
    """Each scrape queries the database: not a page for strangers."""
    with httpx.Client(verify=ssl.create_default_context(cafile=public["ca"]), timeout=30) as c:
        assert c.get(public["https"] + "/metrics").status_code == 404
        assert c.get(public["https"] + "/healthz").status_code in (200, 503)
    assert httpx.get(sw.http + "/metrics", timeout=30).status_code == 200


def test_the_private_ca_key_is_kept_private(running_stack: Stack) -> None:
    tls_dir = Path(running_stack.options.data_dir) / "secrets"
    assert running_stack.endpoints["ca_file"] == str(tls_dir / "ca.pem")
    assert tls_dir.stat().st_mode & 0o777 == 0o700
    for secret in ("ca-key.pem", "server-key.pem"):
        assert (tls_dir / secret).stat().st_mode & 0o777 == 0o600
