"""Broker identities in a running Mosquitto through its dynamic-security plugin.

Creating an engineer or device gives it a username (its id), a password and an ACL that lets it
publish only to its own topics (CONTRACT section 3), without restarting the broker.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
INGEST_TOPICS = ("owntracks/#", "sitewatch/checkin/#", "sitewatch/logs/#", "sitewatch/devices/#")
# Where Mosquitto's journal plugin (stack/mosquitto) publishes again, after a crash, what it had
# acknowledged since its last snapshot: RECOVERED_PREFIX + the original topic. Only the bridge
# may subscribe; nobody may publish there (the plugin publishes past the ACLs).
RECOVERED_PREFIX = "sitewatch/recovered/"
SAFE_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")


class BrokerError(RuntimeError):
    """The broker refused a dynamic-security command or did not answer."""


def check_identity_id(identity: str) -> None:
    """Ids become MQTT usernames and topic levels: no wildcards, slashes or spaces."""
    if not SAFE_ID.match(identity):
        raise ValueError(
            f"id {identity!r} must be 1-64 characters of letters, digits and _ . : @ - "
            "(it becomes an MQTT username and a topic level)"
        )


def new_password() -> str:
    return secrets.token_urlsafe(18)


def engineer_acls(engineer_id: str) -> list[dict[str, Any]]:
    topics = [
        f"owntracks/{engineer_id}/#",
        f"sitewatch/checkin/{engineer_id}",
        f"sitewatch/logs/{engineer_id}",
    ]
    return [{"acltype": "publishClientSend", "topic": t, "allow": True} for t in topics]


def device_acls(device_id: str) -> list[dict[str, Any]]:
    return [
        {"acltype": "publishClientSend", "topic": f"sitewatch/devices/{device_id}/#", "allow": True}
    ]


@dataclass(frozen=True)
class BrokerAdmin:
    host: str
    port: int
    username: str
    password: str

    def execute(
        self, commands: list[dict[str, Any]], *, timeout_s: float = 10.0
    ) -> list[dict[str, Any]]:
        """Send dynamic-security commands in one message and return the broker's responses.

        Every command carries a correlation id: the response topic is shared by every admin
        connection, so concurrent callers must pick out their own answers.
        """
        tag = uuid.uuid4().hex
        tagged = [{**c, "correlationData": f"{tag}:{i}"} for i, c in enumerate(commands)]
        expected = {c["correlationData"] for c in tagged}
        done = threading.Event()
        responses: dict[str, dict[str, Any]] = {}
        failure: list[str] = []
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sitewatch-admin-{tag[:12]}")
        client.username_pw_set(self.username, self.password)

        def on_connect(c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                failure.append(f"connect refused: {reason}")
                done.set()
                return
            c.subscribe(CONTROL_TOPIC + "/response", qos=1)

        def on_subscribe(c: mqtt.Client, *_: Any) -> None:
            c.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)

        def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            try:
                answers = json.loads(msg.payload).get("responses", [])
            except ValueError:
                return
            for r in answers:
                if r.get("correlationData") in expected:
                    responses[r["correlationData"]] = r
            if expected <= responses.keys():
                done.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect(self.host, self.port)
        client.loop_start()
        try:
            if not done.wait(timeout_s):
                raise BrokerError(
                    f"no answer from the broker's dynamic-security plugin within {timeout_s} s"
                )
        finally:
            client.disconnect()
            client.loop_stop()
        if failure:
            raise BrokerError(failure[0])
        return [responses[c["correlationData"]] for c in tagged]

    def _ensure_role(self, rolename: str, acls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {"command": "createRole", "rolename": rolename},
            *({"command": "addRoleACL", "rolename": rolename, **acl} for acl in acls),
        ]

    def ensure_client(
        self, username: str, password: str, rolename: str, acls: list[dict[str, Any]]
    ) -> None:
        """Create or update a client with its own role; existing ones get the new password."""
        commands = [
            *self._ensure_role(rolename, acls),
            {"command": "createClient", "username": username, "password": password},
            {"command": "setClientPassword", "username": username, "password": password},
            {"command": "addClientRole", "username": username, "rolename": rolename},
        ]
        # Creating what exists fails harmlessly (re-registration, restart); the password must take.
        for r in self.execute(commands):
            if r.get("error") and r.get("command") == "setClientPassword":
                raise BrokerError(f"setClientPassword for {username}: {r['error']}")

    def ensure_engineer(self, engineer_id: str, password: str) -> None:
        check_identity_id(engineer_id)
        self.ensure_client(
            engineer_id, password, f"engineer:{engineer_id}", engineer_acls(engineer_id)
        )

    def ensure_device(self, device_id: str, password: str) -> None:
        check_identity_id(device_id)
        self.ensure_client(device_id, password, f"device:{device_id}", device_acls(device_id))

    def ensure_service(self, username: str, password: str) -> None:
        """The service identity (simulators, benchmark): may publish to every ingest topic."""
        acls = [{"acltype": "publishClientSend", "topic": t, "allow": True} for t in INGEST_TOPICS]
        self.ensure_client(username, password, "sitewatch-service", acls)

    def ensure_bridge(self, username: str, password: str) -> None:
        """The bridge subscribes to every ingest topic, and clears OwnTracks' retained copies
        (ingest.bridge: an empty retained message)."""
        subscribed = (*INGEST_TOPICS, RECOVERED_PREFIX + "#")
        acls = [{"acltype": "subscribePattern", "topic": t, "allow": True} for t in subscribed]
        acls.append({"acltype": "publishClientSend", "topic": "owntracks/#", "allow": True})
        self.ensure_client(username, password, "sitewatch-bridge", acls)
