# Stasis — the two commands a user needs are `make demo` and `make test`; the rest are for developers.
# Every target installs missing Debian packages first (scripts/setup-deps.sh; quiet when all present).

PYTHON ?= /usr/bin/python3.11      # the one interpreter the build, the tests and build/bin/python use
BUILD  ?= build
PREFIX ?= /usr/local
BUILD_TYPE ?= RelWithDebInfo
JOBS   ?= $(shell nproc)
CTEST_JOBS ?= 2
FUZZ_SECONDS ?= 600   # per fuzz target (make fuzz); FUZZ_JOBS=N runs N workers per target

.PHONY: all setup configure build test demo bench install clean conformance fuzz

all: build

setup:
	@bash scripts/setup-deps.sh

configure: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DSTASIS_PYTHON=$(strip $(PYTHON)) \
	  -DCMAKE_INSTALL_PREFIX=$(PREFIX) >$(BUILD).configure.log 2>&1 \
	  || { cat $(BUILD).configure.log; exit 1; }

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(CTEST_JOBS) --timeout 1500

demo: build
	@bash samples/demo.sh $(BUILD)

bench: build
	@bash bench/run_all.sh $(BUILD)

fuzz: build
	@bash tests/fuzz/run.sh $(BUILD) $(strip $(FUZZ_SECONDS))

conformance: build
	@$(BUILD)/bin/python tests/conformance/run.py --full

install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)
	@echo "installed: $(PREFIX)/bin/stasis"

clean:
	@rm -rf $(BUILD) $(BUILD).configure.log
