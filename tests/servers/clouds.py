"""An object-store destination under test: which server, which bucket, and its TOML."""

from __future__ import annotations

from dataclasses import dataclass

from servers import BucketReader

S3_ENV = {"RIVET_T_S3_KEY": "testing", "RIVET_T_S3_SECRET": "Sup3rS3cretS3Key"}


@dataclass
class Cloud:
    kind: str
    endpoint: str
    bucket: str
    destination: str
    """The ``[exports.destination]`` keys (TOML lines) without ``prefix``."""

    @property
    def reader(self) -> BucketReader:
        return BucketReader(self.endpoint, self.bucket)

    def toml(self, prefix: str = "{export}") -> str:
        return f'{self.destination}\nprefix = "{prefix}"\n'
