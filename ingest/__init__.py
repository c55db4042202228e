"""SiteWatch ingest: the edge where phones, devices and apps hand over their messages.

Pure layers (no network, no database):

* :mod:`wire.records` - the normalised records and :class:`~wire.records.Rejected`.
* :mod:`gm.algorithms` - national algorithms (SM2 signatures, SM3 hashes/HMAC, SM4 at rest).
* :mod:`wire.codecs` - wire formats (MQTT topics, OwnTracks HTTP, Traccar OsmAnd).
* :mod:`rules.verify` - identity, signature and MAC checks against a directory.

See ``docs/ingest.md``.
"""
