"""SiteWatch geofence engine: pure, vectorised geometry for the stream workers.

Imports only the standard library, numpy and shapely. No I/O, no clocks, no globals
that change after import. See ``docs/geofence.md``.
"""

from __future__ import annotations
