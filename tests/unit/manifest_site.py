"""A project whose local destination holds one complete run of export ``nums``: data files
written by the real local destination, ``manifest.json`` and ``_SUCCESS`` built by the real
manifest writer (:mod:`rivet_core.runner.manifest`). Tests replace the manifest or the marker
with hostile bytes and validate. No database is needed: ``rivet validate`` never connects.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa

from rivet_core.backends import Destination, DestinationContext, SupportsListing
from rivet_core.cli.common import Console, plan_for
from rivet_core.cli.main import main
from rivet_core.redact import forget_secrets
from rivet_core.runner.manifest import (
    build_manifest,
    encode,
    manifest_name,
    sha256,
    success_marker,
    success_name,
)
from rivet_core.runner.results import ExportResult, FileResult
from rivet_core.validation import ExportValidation, validate_export

EXPORT = "nums"
RUN_ID = "20260101T000000Z-abcdef"
CONFIG = """\
[source]
type = "postgres"
url = "postgresql://nobody@127.0.0.1:1/never-connected"

[[exports]]
name = "nums"
query = "SELECT g AS id FROM generate_series(1, 6) g"
format = "csv"
max_file_size = "1MB"
[exports.destination]
type = "local"
path = "./output/{export}"
"""
PARTS = {f"{EXPORT}_{RUN_ID}_part0001.csv": b"id\n1\n2\n3\n",
         f"{EXPORT}_{RUN_ID}_part0002.csv": b"id\n4\n5\n6\n"}


@attrs.frozen
class CliResult:
    code: int
    out: str
    err: str


@attrs.define
class ManifestSite:
    root: Path
    manifest: bytes
    """The exact bytes the real writer produced."""

    @property
    def config(self) -> Path:
        return self.root / "rivet.toml"

    @property
    def directory(self) -> Path:
        return self.root / "output" / EXPORT

    def document(self) -> dict[str, Any]:
        """A fresh copy of the real manifest, to mutate."""
        return json.loads(self.manifest)

    def destination(self) -> Destination:
        """The export's local destination, built as ``rivet validate`` builds it."""
        plan = plan_for(str(self.config), None, None, connect=False).exports[0]
        context = DestinationContext(export=EXPORT, run_id=RUN_ID,
                                     started_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                                     config_dir=self.root)
        destination: Destination = plan.destination.spec.factory(
            plan.config.destination.options, context)
        return destination

    def write(self, manifest: bytes | None = None, marker: bytes | None = None) -> None:
        """Replace the manifest and the marker. A replaced manifest gets a marker that vouches
        for its exact bytes unless ``marker`` is given, so the manifest's own content is what
        validate judges."""
        manifest = self.manifest if manifest is None else manifest
        if marker is None:
            marker = success_marker(RUN_ID, manifest)
        destination = self.destination()
        assert isinstance(destination, SupportsListing)
        try:
            destination.write_small(manifest_name(EXPORT), manifest)
            destination.write_small(success_name(EXPORT), marker)
        finally:
            destination.close()

    def validate(self) -> ExportValidation:
        destination = self.destination()
        assert isinstance(destination, SupportsListing)
        try:
            return validate_export(EXPORT, destination, self.directory.as_uri())
        finally:
            destination.close()

    def cli(self, *args: str) -> CliResult:
        """``rivet <args> -c rivet.toml`` in-process; an exception escapes as it would from
        the console script (as a traceback)."""
        out, err = io.StringIO(), io.StringIO()
        forget_secrets()
        code = main([*args, "-c", str(self.config)], Console(out=out, err=err))
        return CliResult(code=int(code), out=out.getvalue(), err=err.getvalue())


def build_site(root: Path) -> ManifestSite:
    """Write the config, the run's parts and its manifest and marker under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "rivet.toml").write_text(CONFIG)
    site = ManifestSite(root=root, manifest=b"")
    plan = plan_for(str(site.config), None, None, connect=False).exports[0]
    destination = site.destination()
    try:
        files = []
        for name, data in PARTS.items():
            target = destination.open(name)
            target.write(data)
            committed = target.commit()
            files.append(FileResult(name=name, uri=committed.uri, rows=3, bytes=len(data),
                                    sha256=sha256(data)))
        started = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        result = ExportResult(export=EXPORT, run_id=RUN_ID, mode="full", status="success",
                              rows=6, files=files, started_at=started,
                              finished_at=started + dt.timedelta(seconds=1),
                              destination=destination.location())
        schema = pa.schema([pa.field("id", pa.int32(),
                                     metadata={b"rivet.source_type": b"integer"})])
        site.manifest = encode(build_manifest(plan, result, schema=schema, cursor=None))
    finally:
        destination.close()
    site.write()
    return site
