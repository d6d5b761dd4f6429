"""rivetbench: the benchmark harness that compares ``rivet run`` with the reference tools.

Run it as ``.venv/bin/python bench/run.py --all`` (see ``bench/README.md``). Modules:

- :mod:`rivetbench.settings`: paths and the two database connections;
- :mod:`rivetbench.fixtures`: the fixture tables as SQL (pure), :mod:`rivetbench.seed` runs it;
- :mod:`rivetbench.tools`: every tool as the command line the harness starts;
- :mod:`rivetbench.rivetcfg`: the ``rivet.toml`` per run and the Rivet variants;
- :mod:`rivetbench.refenv`: the separate virtualenv holding the reference tools;
- :mod:`rivetbench.refrun`: the reference tools' code, run inside that virtualenv;
- :mod:`rivetbench.measure`: one timed child process and the server-side sampler;
- :mod:`rivetbench.verify`: reading an output back to count its rows;
- :mod:`rivetbench.report`: medians, ratios and the Markdown/JSON report (pure);
- :mod:`rivetbench.startup`: the ``--startup`` shape (CLI start-up and import profile);
- :mod:`rivetbench.plot`: the ``--scaling`` shape's PNG (matplotlib, imported only there);
- :mod:`rivetbench.cli`: the command line and the run loop (``--many-small`` included).

Not part of the product and not imported by it.
"""

from __future__ import annotations
