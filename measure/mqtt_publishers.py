"""A lean MQTT 3.1.1 QoS 1 publisher for load generation (benchmarks and soak tests).

paho-mqtt spends about 150 us of CPU per QoS 1 publish (one process tops out near 6.8k/s on
this machine), so paho publishers would eat the cores the broker and the bridge are measured
on. This one writes pre-encoded PUBLISH packets in large chunks over a plain socket, keeps up
to ``window`` messages in flight (packet ids 1..65535, reused only after their PUBACK) and
counts PUBACKs: a message is *acknowledged* once the broker's PUBACK for it arrived.

It speaks only what it needs (CONNECT with username/password and a clean session, PUBLISH at
QoS 1, PUBACK); it is not a general MQTT client.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["PublishResult", "encode_all", "encode_publish", "publish_qos1"]

_CONNECT, _CONNACK, _PUBLISH_QOS1, _PUBACK = 0x10, 0x20, 0x32, 0x40


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: bytes) -> bytes:
    return struct.pack("!H", len(s)) + s


def encode_connect(client_id: str, username: str, password: str, keepalive: int = 0) -> bytes:
    body = (
        _string(b"MQTT")
        + bytes([4, 0x80 | 0x40 | 0x02])  # level 4 (3.1.1); username, password, clean session
        + struct.pack("!H", keepalive)
        + _string(client_id.encode())
        + _string(username.encode())
        + _string(password.encode())
    )
    return bytes([_CONNECT]) + _varint(len(body)) + body


def encode_publish(topic: str, payload: bytes, mid: int) -> bytes:
    t = topic.encode()
    rest = struct.pack("!H", len(t)) + t + struct.pack("!H", mid) + payload
    return bytes([_PUBLISH_QOS1]) + _varint(len(rest)) + rest


def encode_all(messages: Sequence[tuple[str, bytes]]) -> list[bytes]:
    """``messages`` as PUBLISH packets with the packet ids :func:`publish_qos1` gives them
    (1, 2, ... 65535, 1, ...): encoded before a timed run, the publisher only writes bytes."""
    return [encode_publish(t, p, k % 65535 + 1) for k, (t, p) in enumerate(messages)]


@dataclass
class PublishResult:
    sent: int = 0
    acked: int = 0
    seconds: float = 0.0
    acked_indexes: list[int] = field(default_factory=list)  # only with track=True

    @property
    def acked_per_s(self) -> float:
        return self.acked / self.seconds if self.seconds > 0 else 0.0


def _read_packets(buf: bytearray) -> tuple[list[tuple[int, bytes]], int]:
    """Complete packets at the start of ``buf``: [(first byte, body)], bytes consumed."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    n = len(buf)
    while pos + 2 <= n:
        mult, length, i = 1, 0, pos + 1
        while True:
            if i >= n:
                return out, pos
            b = buf[i]
            length += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
        if i + length > n:
            break
        out.append((buf[pos], bytes(buf[i : i + length])))
        pos = i + length
    return out, pos


def publish_qos1(
    host: str,
    port: int,
    username: str,
    password: str,
    messages: Sequence[tuple[str, bytes]] | None,
    *,
    encoded: Sequence[bytes] | None = None,
    client_id: str,
    window: int = 5000,
    chunk: int = 500,
    rate: float | None = None,
    track: bool = False,
    timeout_s: float = 120.0,
    start_at: float | None = None,
    on_connected: Callable[[], None] | None = None,
) -> PublishResult:
    """Publish ``messages`` ((topic, payload) pairs) at QoS 1 and wait for every PUBACK.

    ``rate`` (msgs/s) paces the sends; ``None`` sends as fast as the window allows.
    ``track=True`` records which message indexes were acknowledged (the broker acks in order).
    ``encoded`` (from :func:`encode_all`) replaces ``messages``: packets written as they are.
    Returns early (with what was acknowledged) if the connection drops or ``timeout_s`` passes.
    """
    window = max(1, min(window, 65000))
    sock = socket.create_connection((host, port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    result = PublishResult()
    try:
        sock.sendall(encode_connect(client_id, username, password))
        buf = bytearray()
        while True:
            data = sock.recv(4096)
            if not data:
                raise ConnectionError("broker closed the connection during CONNECT")
            buf += data
            packets, used = _read_packets(buf)
            if packets:
                del buf[:used]
                first, body = packets[0]
                if first != _CONNACK or len(body) < 2 or body[1] != 0:
                    raise ConnectionError(f"CONNECT refused (return code {body[1:2].hex()})")
                break
        if on_connected is not None:
            on_connected()
        if start_at is not None:
            while time.time() < start_at:
                time.sleep(0.001)
        sock.setblocking(False)
        if encoded is None:
            assert messages is not None
        total = len(encoded) if encoded is not None else len(messages)  # type: ignore[arg-type]
        inflight: list[int] = []  # message indexes in send order (acks come back in order)
        head = 0  # index of the oldest in-flight message in `inflight`
        nxt = 0
        mid = 0
        t0 = time.perf_counter()
        deadline = t0 + timeout_s
        pending_out = b""
        while result.acked < total:
            now = time.perf_counter()
            if now > deadline:
                break
            # Fill the window.
            if not pending_out and nxt < total and (len(inflight) - head) < window:
                room = window - (len(inflight) - head)
                allowed = min(chunk, room, total - nxt)
                if rate is not None:
                    due = int((now - t0) * rate) - nxt
                    allowed = min(allowed, max(0, due))
                if allowed > 0 and encoded is not None:
                    inflight.extend(range(nxt, nxt + allowed))
                    pending_out = b"".join(encoded[nxt : nxt + allowed])
                    nxt += allowed
                    result.sent = nxt
                elif allowed > 0:
                    assert messages is not None
                    parts = []
                    for k in range(nxt, nxt + allowed):
                        mid = mid % 65535 + 1
                        topic, payload = messages[k]
                        parts.append(encode_publish(topic, payload, mid))
                        inflight.append(k)
                    nxt += allowed
                    result.sent = nxt
                    pending_out = b"".join(parts)
            want_write = bool(pending_out)
            r, w, _ = select.select([sock], [sock] if want_write else [], [], 0.005)
            if w and pending_out:
                try:
                    n = sock.send(pending_out)
                    pending_out = pending_out[n:]
                except BlockingIOError:
                    pass
            if r:
                try:
                    data = sock.recv(1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    break  # connection lost: report what was acknowledged
                buf += data
                packets, used = _read_packets(buf)
                del buf[:used]
                for first, _body in packets:
                    if first & 0xF0 == _PUBACK:
                        if track:
                            result.acked_indexes.append(inflight[head])
                        head += 1
                        result.acked += 1
                if head > 100_000:
                    del inflight[:head]
                    head = 0
        result.seconds = time.perf_counter() - t0
        try:
            sock.setblocking(True)
            sock.sendall(b"\xe0\x00")  # DISCONNECT
        except OSError:
            pass
        return result
    finally:
        sock.close()
