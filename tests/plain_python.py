"""The plain CPython the build was configured with (STASIS_PYTHON in the top CMakeLists.txt, `make
PYTHON=...`), which tests run programs with to compare against a run under Stasis. ctest passes it
in the environment (tests/CMakeLists.txt); run by hand outside ctest, the interpreter the build's
bin/python links to."""
import os
import sys

PLAIN = os.environ.get("STASIS_PYTHON") or os.path.realpath(sys.executable)
