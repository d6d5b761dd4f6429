"""docs/plugins.md's complete example is real: its plugin and conformance test run here."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def example_files() -> dict[str, str]:
    blocks = re.findall(r"```python\n# file: (\S+)\n(.*?)```", DOC.read_text(), re.DOTALL)
    return dict(blocks)


def test_the_plugin_guide_example_passes_the_conformance_kit(pytester):
    files = example_files()
    assert set(files) == {"rivet_vault.py", "test_vault.py"}
    for name, text in files.items():
        pytester.makepyfile(**{name[:-3]: text})
    pytester.syspathinsert()
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=13, skipped=9)
    result.stdout.fnmatch_lines(["*'vault' does not declare streaming*"])
    result.stdout.fnmatch_lines(["*[[]8[]]*'vault' does not implement SupportsListing*"])
