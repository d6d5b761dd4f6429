"""The conformance kit against the built-in ``stdout`` destination, read through a pipe."""

from __future__ import annotations

import fcntl
import io
import os
import select
import struct
import sys
import termios
import threading

import pytest

from rivet_core.plugins import build_registry
from rivet_core.testing import DestinationTests


class PipeReader:
    """The other end of a pipe standing in for stdout: what a downstream reader got."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.data = bytearray()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self) -> None:
        while not self.stop.is_set():
            ready, _, _ = select.select([self.read_fd], [], [], 0.01)
            if ready:
                with self.lock:  # read and append as one step, so list() sees both or none
                    chunk = os.read(self.read_fd, 1 << 16)
                    self.data += chunk
                if not chunk:
                    return

    def _pending(self) -> int:
        raw = fcntl.ioctl(self.read_fd, termios.FIONREAD, struct.pack("i", 0))
        return int(struct.unpack("i", raw)[0])

    def list(self) -> list[tuple[str, int]]:
        while self._pending():
            threading.Event().wait(0.001)
        with self.lock:
            return [("<stdout>", len(self.data))] if self.data else []

    def read(self, name: str) -> bytes:
        self.list()
        with self.lock:
            return bytes(self.data)

    def leftovers(self) -> list[str]:
        return []

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        os.close(self.read_fd)


class TestStdoutDestination(DestinationTests):
    @pytest.fixture
    def destination_spec(self):
        return build_registry().destinations["stdout"].spec

    @pytest.fixture
    def destination_config(self):
        return {}

    @pytest.fixture
    def backdoor(self, monkeypatch):
        reader = PipeReader()
        # The destination writes to sys.stdout.buffer: make that a real buffered pipe.
        writer = io.TextIOWrapper(io.BufferedWriter(io.FileIO(reader.write_fd, "w")))
        monkeypatch.setattr(sys, "stdout", writer)
        yield reader
        monkeypatch.undo()
        writer.close()
        reader.close()

    @pytest.fixture
    def destination(self, backdoor, build_destination):
        # Built after the back door replaced sys.stdout, like a run writing into a pipe.
        return build_destination()
