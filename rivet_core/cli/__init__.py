"""The ``rivet`` command line: one module per command group, argparse only."""
