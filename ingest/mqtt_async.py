"""paho-mqtt 2 driven by an asyncio event loop, tuned for a high-rate QoS 1 subscriber.

paho's own network loop (``loop_start``) reads one packet per ``select()`` with three or more
``recv()`` calls per packet (command byte, each length byte, body) and, with manual acks from
another thread, writes one PUBACK per ``send()`` after waking its thread through a socket pair.
That caps a subscriber at a few thousand QoS 1 messages per second. Here:

* the socket is registered with the asyncio loop (paho's documented external-loop interface:
  ``on_socket_open``/``on_socket_close``/``on_socket_register_write``/
  ``on_socket_unregister_write`` with ``loop_read``/``loop_write``/``loop_misc``), so callbacks
  run on the event loop's thread and nothing crosses threads;
* ``recv()`` is buffered (64 KiB at a time; paho's ``_sock_recv`` is overridden), and a
  readable socket is drained until it would block; between packets, every complete QoS 0/1
  PUBLISH in the buffer is parsed in one loop (anything else, and a PUBLISH split across two
  reads, goes through paho's own ``loop_read``);
* :meth:`AsyncMqttClient.ack_many` queues the PUBACKs of a whole batch as one write;
* with ``on_publish_raw`` set, an incoming QoS 0/1 PUBLISH is handed over as
  ``(mid, qos, dup, topic bytes, payload)`` without building paho's ``MQTTMessage`` and, for
  MQTT 5, without parsing its properties into a ``Properties`` object (paho's
  ``decode_publish`` spends about 10 us per message on that; the bridge needs none of them: it
  grants no topic aliases). QoS 2 and clients without the hook take paho's own path.

Reconnection is done here (paho's loop would do it otherwise): after a lost connection the
client reconnects with back-off and ``connection_id`` increases, so the owner can tell which
deliveries belong to a connection that no longer exists (their packet ids must not be acked on
the new one; the broker redelivers them).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket

RawPublish = Callable[[int, int, bool, bytes, bytes], None]

log = logging.getLogger("sitewatch.bridge")

RECV_CHUNK = 1 << 16
PACKETS_PER_SLICE = 500  # then yield to the event loop
_PUBACK = 0x40


def _parse_publish(
    header: int, buf: bytes | bytearray, start: int, end: int, v5: bool
) -> tuple[int, int, bool, bytes, bytes]:
    """(mid, qos, dup, topic, payload) of the PUBLISH body ``buf[start:end]``; MQTT 5
    properties are skipped. Raises IndexError when the body is malformed."""
    qos = (header & 0x06) >> 1
    if end - start < 2:
        raise IndexError("PUBLISH too short")
    slen = (buf[start] << 8) | buf[start + 1]
    pos = start + 2 + slen
    topic = bytes(buf[start + 2 : pos])
    mid = 0
    if qos:
        if pos + 2 > end:
            raise IndexError("no packet id")
        mid = (buf[pos] << 8) | buf[pos + 1]
        pos += 2
    if v5:
        length, mult = 0, 1
        while True:  # properties: a variable byte integer length, then skipped
            if pos >= end:
                raise IndexError("no properties length")
            byte = buf[pos]
            pos += 1
            length += (byte & 0x7F) * mult
            mult *= 128
            if not byte & 0x80:
                break
            if mult > 128**3:
                raise IndexError("property length too long")
        pos += length
    elif slen == 0:
        raise IndexError("empty topic")
    if pos > end:
        raise IndexError("PUBLISH shorter than its headers")
    return mid, qos, bool(header & 0x08), topic, bytes(buf[pos:end])


class AsyncMqttClient(mqtt.Client):
    """A paho ``Client`` (VERSION2 callbacks) whose network I/O runs on an asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(CallbackAPIVersion.VERSION2, **kwargs)
        self._aio_loop = loop
        self._rbuf = b""
        self._rpos = 0
        self._would_block = False
        self._aio_sock: Any = None
        self._misc_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._closing = False
        self._paused = False
        self.connection_id = 0
        self.on_publish_raw: RawPublish | None = None
        self.on_socket_open = self._aio_socket_open
        self.on_socket_close = self._aio_socket_close
        self.on_socket_register_write = self._aio_register_write
        self.on_socket_unregister_write = self._aio_unregister_write

    # -- buffered reads ------------------------------------------------------------------

    def _sock_recv(self, bufsize: int) -> bytes:
        buf = self._rbuf
        pos = self._rpos
        if pos >= len(buf):
            try:
                buf = super()._sock_recv(RECV_CHUNK)
            except BlockingIOError:
                self._would_block = True
                raise
            if not buf:
                return b""  # connection closed by the broker
            self._rbuf = buf
            pos = 0
        end = pos + bufsize
        self._rpos = end
        return buf[pos:end]

    def pause_reading(self) -> None:
        """Stop reading (the broker then holds what we cannot take yet); see resume."""
        if not self._paused:
            self._paused = True
            if self._aio_sock is not None:
                self._aio_loop.remove_reader(self._aio_sock)

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            if self._aio_sock is not None:
                self._aio_loop.add_reader(self._aio_sock, self._read_ready)
                self._aio_loop.call_soon(self._read_ready)  # bytes may wait in our buffer

    @property
    def paused(self) -> bool:
        return self._paused

    def _read_ready(self) -> None:
        self._would_block = False
        for _ in range(PACKETS_PER_SLICE):
            if self._sock is None or self._paused:
                return
            if self.on_publish_raw is not None and self._in_packet["command"] == 0:
                # Between packets: take every complete PUBLISH in the buffer at once.
                if self._rpos >= len(self._rbuf) and not self._refill():
                    return
                if self._bulk_publish():
                    continue
            # Anything else (CONNACK, SUBACK, PINGRESP, a PUBLISH split across reads): paho.
            rc = self.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or self._would_block:
                return
        # Bytes may be left in our buffer while the socket is no longer readable.
        self._aio_loop.call_soon(self._read_ready)

    def _refill(self) -> bool:
        """Read what the socket has into the (empty) buffer; False when nothing came (would
        block) or the connection ended (then paho's read path reports it)."""
        try:
            data = self._sock.recv(RECV_CHUNK)  # type: ignore[union-attr]
        except BlockingIOError:
            self._would_block = True
            return False
        except OSError:
            self.loop_read()  # paho sees the same error and handles the lost connection
            return False
        if not data:
            self.loop_read()  # end of stream: paho reads b"" and reports the lost connection
            return False
        self._rbuf, self._rpos = data, 0
        self._last_bytes_received = time.monotonic()
        return True

    def _bulk_publish(self) -> int:
        """Hand every complete QoS 0/1 PUBLISH at the front of the buffer to
        ``on_publish_raw``; stop at anything else. Returns how many were handed over."""
        buf = self._rbuf
        end = len(buf)
        handler = self.on_publish_raw
        assert handler is not None
        v5 = self._protocol == MQTTProtocolVersion.MQTTv5
        n = 0
        pos = self._rpos
        while pos + 2 <= end and not self._paused:
            header = buf[pos]
            if header & 0xF0 != 0x30 or header & 0x06 == 0x06 or header & 0x06 == 0x04:
                break
            i = pos + 1
            length = 0
            mult = 1
            complete = False
            while i < end and mult <= 128**3:
                byte = buf[i]
                i += 1
                length += (byte & 0x7F) * mult
                mult *= 128
                if not byte & 0x80:
                    complete = True
                    break
            if not complete or i + length > end:
                break  # split across reads (or malformed): paho's path deals with it
            try:
                fields = _parse_publish(header, buf, i, i + length, v5)
            except IndexError:
                break  # malformed: paho's path reports it and drops the connection
            pos = i + length
            self._rpos = pos
            handler(*fields)
            n += 1
        if n:
            self._last_bytes_received = time.monotonic()
        return n

    # -- incoming PUBLISH ---------------------------------------------------------------------

    def _handle_publish(self) -> MQTTErrorCode:
        handler = self.on_publish_raw
        header = self._in_packet["command"]
        qos = (header & 0x06) >> 1
        if handler is None or qos > 1:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        v5 = self._protocol == MQTTProtocolVersion.MQTTv5
        try:
            fields = _parse_publish(header, packet, 0, len(packet), v5)
        except IndexError as exc:
            raise MalformedPacket(f"PUBLISH: {exc}") from exc
        handler(*fields)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(fields[0])
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    # -- writes ----------------------------------------------------------------------------

    def ack_many(self, mids: Iterable[int]) -> None:
        """Queue the QoS 1 PUBACKs of ``mids`` (in this order) as one write."""
        data = b"".join(struct.pack("!BBH", _PUBACK, 2, mid) for mid in mids)
        if data and self._sock is not None:
            self._packet_queue(_PUBACK, data, 0, 0)

    # -- asyncio integration ---------------------------------------------------------------

    def _aio_socket_open(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        self.connection_id += 1
        self._rbuf, self._rpos = b"", 0
        self._aio_sock = sock
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        if not self._paused:
            self._aio_loop.add_reader(sock, self._read_ready)
        if self._misc_task is None or self._misc_task.done():
            self._misc_task = self._aio_loop.create_task(self._misc_loop())

    def _aio_socket_close(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        self._aio_loop.remove_reader(sock)
        self._aio_loop.remove_writer(sock)
        self._rbuf, self._rpos = b"", 0
        self._aio_sock = None
        if not self._closing and (self._reconnect_task is None or self._reconnect_task.done()):
            self._reconnect_task = self._aio_loop.create_task(self._reconnect_loop())

    def _aio_register_write(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        self._aio_loop.add_writer(sock, self.loop_write)

    def _aio_unregister_write(self, _c: mqtt.Client, _u: Any, sock: Any) -> None:
        self._aio_loop.remove_writer(sock)

    async def _misc_loop(self) -> None:
        while not self._closing:
            if self._sock is not None:
                self.loop_misc()  # keepalive pings
            await asyncio.sleep(1.0)

    async def _reconnect_loop(self) -> None:
        delay = 0.5
        while not self._closing and self._sock is None:
            await asyncio.sleep(delay)
            try:
                self.reconnect()
                log.info("reconnecting to MQTT")
                return
            except OSError as exc:
                log.warning("MQTT reconnect failed (%s); retrying in %.1f s", exc, delay)
                delay = min(delay * 2, 10.0)

    def start(self, host: str, port: int, **connect_kwargs: Any) -> None:
        """Connect: blocking TCP connect, then the MQTT handshake on the event loop."""
        self.connect_async(host, port, **connect_kwargs)
        self.reconnect()

    async def close(self) -> None:
        """Disconnect cleanly (what was queued is written first) and stop the helpers."""
        self._closing = True
        if self._sock is not None:
            self.disconnect()
            for _ in range(50):  # flush the DISCONNECT
                if self._sock is None or not self.want_write():
                    break
                await asyncio.sleep(0.01)
        if self._sock is not None:
            self._sock_close()
        for task in (self._misc_task, self._reconnect_task):
            if task is not None and not task.done():
                task.cancel()
