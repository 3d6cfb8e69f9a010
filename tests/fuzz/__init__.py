"""Coverage-guided fuzzing of the decoders and roles with atheris (issue 11).

``python -m tests.fuzz --seconds N [--harness NAME]`` runs the harnesses of
:mod:`tests.fuzz.harnesses` (one atheris subprocess each; see ``tests/fuzz/README.md``). This
package imports no project code at import time, so the worker can instrument it first.
"""
