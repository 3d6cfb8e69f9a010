"""relaysec application layer: node runtime, trial runner and the ``relaysec`` command line.

This package composes :mod:`stack` (security sublayer and roles), :mod:`phy` (burst modem) and
:mod:`hw` (radios); those three never import it.
"""

__version__ = "0.1.0"
