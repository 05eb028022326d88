// tests/unit/test_main.cpp — GoogleTest main for the unit binaries: starts an embedded CPython
// that can import the built `stasis` package (build/python).
#include <Python.h>
#include <gtest/gtest.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0;
  PyConfig_SetBytesString(&config, &config.program_name, "stasis-unit-tests");
  Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  PyRun_SimpleString("import sys; sys.path.insert(0, '" STASIS_PYDIR "')");
  int rc = RUN_ALL_TESTS();
  Py_FinalizeEx();
  return rc;
}
