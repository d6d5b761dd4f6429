"""The base classes plugins build on."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from rivet_core.backends import BatchStream


class Counting(BatchStream):
    def __init__(self) -> None:
        self.schema = pa.schema([("n", pa.int64())])
        self.columns = []
        self.calls = 0

    def batches(self) -> Iterator[pa.RecordBatch]:
        self.calls += 1
        yield pa.record_batch([pa.array([1, 2])], schema=self.schema)


def test_a_batch_stream_reads_forward_once():
    stream = Counting()
    assert [b.num_rows for b in stream] == [2]
    with pytest.raises(RuntimeError, match="a Counting can be iterated only once"):
        iter(stream)
    assert stream.calls == 1
