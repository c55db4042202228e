"""SiteWatch ingest: the edge where phones, devices and apps hand over their messages.

Pure layers (no network, no database):

* :mod:`ingest.records` - the normalised records and :class:`~ingest.records.Rejected`.
* :mod:`ingest.gm` - national algorithms (SM2 signatures, SM3 hashes/HMAC, SM4 at rest).
* :mod:`ingest.codecs` - wire formats (MQTT topics, OwnTracks HTTP, Traccar OsmAnd).
* :mod:`ingest.verify` - identity, signature and MAC checks against a directory.

See ``docs/ingest.md``.
"""
