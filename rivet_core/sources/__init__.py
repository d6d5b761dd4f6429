"""The toolkit SQL sources share (like dlt's ``SqlClientBase``): what every database source
does the same way, so a plugin keeps only what is specific to its database and driver.

- :class:`SqlSource` (:mod:`.base`): resolved, redacted connection settings, one reused
  connection (:class:`ConnectionSlot`, :mod:`.connection`: replaced once when found dead),
  one read at a time, closing; the reset that lets one source serve the next export of a
  run (``reset_session``, with the plugin's ``reset_connection``).
- :class:`FetchingBatchStream` (:mod:`.stream`): the fetch loop of a server-side result:
  ``batch_size`` rows per fetch, halved while batches exceed ``max_batch_bytes``, a pause
  of ``throttle_ms`` between fetches, the transaction ended as soon as the last row is in.
- :func:`apply_overrides` (:mod:`.columns`): ``[exports.columns]`` applied to mapped
  columns, with one error for an override naming no column.
- :class:`ErrorTable` (:mod:`.errors`): a database's failures classified (transient or
  permanent, a timeout or not), hinted and redacted into
  :class:`~rivet_core.errors.SourceError`.

Plugins import these names from :mod:`rivet_core.api`.
"""

from __future__ import annotations

from rivet_core.sources.base import SqlSource
from rivet_core.sources.columns import apply_overrides
from rivet_core.sources.connection import ConnectionSlot
from rivet_core.sources.errors import ErrorTable
from rivet_core.sources.stream import FetchingBatchStream

__all__ = ["ConnectionSlot", "ErrorTable", "FetchingBatchStream", "SqlSource",
           "apply_overrides"]
