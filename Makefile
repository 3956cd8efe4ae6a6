# Thin wrapper around CMake. `make run` and `make test` are the README's two commands, and work on a fresh
# Debian 12 machine: each installs what it needs (Debian packages, npm modules) before it needs it. `make run`
# needs only the build dependencies; `make test` installs the test dependencies before CMake looks for them.
BUILD  ?= build
ASAN   ?= OFF
WERROR ?= ON
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
ARGS   ?=
CTEST_ARGS ?=
FUZZ_SECONDS ?= 60
PREFIX ?= /usr/local

.PHONY: all deps deps-test configure build install run test test-asan test-valgrind test-container fuzz format format-check clean bench bench-tls bench-load bench-soak bench-scopes bench-events bench-node

all: build

deps:
	@.ci/install-deps

deps-test:
	@.ci/install-deps --test

# Configured every time (a second or less): a build directory made by `make run`, before the test
# dependencies were installed, then finds cmocka and builds the unit tests.
configure:
	@mkdir -p $(BUILD)
	@cmake -S . -B $(BUILD) -DASAN=$(ASAN) -DWERROR=$(WERROR) >$(BUILD)/configure.log 2>&1 || { cat $(BUILD)/configure.log; exit 1; }

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The binary in PREFIX/bin, the shipped profiles in PREFIX/share/smtpfault/profiles (where the binary looks
# for them, wherever PREFIX is), the docs in PREFIX/share/doc/smtpfault. DESTDIR is honoured.
install: deps
	@$(MAKE) --no-print-directory build
	cmake --install $(BUILD) --prefix $(PREFIX)

run: deps
	@$(MAKE) --no-print-directory build
	./$(BUILD)/smtpfault $(ARGS)

test: deps-test
	@$(MAKE) --no-print-directory build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# Only the image and docker-compose under podman (tests/container/run.sh; root, about 2 minutes cold).
test-container: deps-test
	@$(MAKE) --no-print-directory build
	cd $(BUILD) && ctest --output-on-failure -L container $(CTEST_ARGS)

# The suite under ASan + UBSan; the container test builds its own image, so it has nothing to add here.
test-asan:
	$(MAKE) test BUILD=build-asan ASAN=ON CTEST_ARGS="-LE container $(CTEST_ARGS)"

# Every end-to-end test with each server under valgrind memcheck: a leak or memory error fails the test.
test-valgrind: deps-test
	@$(MAKE) --no-print-directory build
	cd $(BUILD) && SMTPFAULT_VALGRIND=1 ctest --output-on-failure -j $(JOBS) -L e2e -LE container --timeout 1200 $(CTEST_ARGS)

fuzz: deps
	tests/fuzz/run.sh $(FUZZ_SECONDS)

bench: deps-test
	@$(MAKE) --no-print-directory build
	bench/run.sh ./$(BUILD)/smtpfault

# TLS against Nodemailer's smtp-server (pinned by bench/node/package-lock.json), load, and soak;
# see docs/performance.md. ARGS passes options, e.g. make bench-soak ARGS="--messages 50000".
bench-node:
	@if [ ! -d bench/node/node_modules ] || [ bench/node/package-lock.json -nt bench/node/node_modules ]; then \
	  (cd bench/node && npm ci --no-audit --no-fund --loglevel=error) && touch bench/node/node_modules; fi

bench-tls: deps bench-node
	@$(MAKE) --no-print-directory build
	/usr/bin/python3 bench/tls_bench.py ./$(BUILD)/smtpfault $(ARGS)

bench-load: deps
	@$(MAKE) --no-print-directory build
	/usr/bin/python3 bench/load.py ./$(BUILD)/smtpfault $(ARGS)

bench-soak: deps
	@$(MAKE) --no-print-directory build
	/usr/bin/python3 bench/soak.py ./$(BUILD)/smtpfault $(ARGS)

bench-scopes: deps
	@$(MAKE) --no-print-directory build
	/usr/bin/python3 bench/scopes.py ./$(BUILD)/smtpfault $(ARGS)

bench-events: deps
	@$(MAKE) --no-print-directory build
	/usr/bin/python3 bench/events.py ./$(BUILD)/smtpfault $(ARGS)

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

# CI: every C file as .clang-format wants it (make format fixes them)
format-check:
	git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror

clean:
	rm -rf build build-asan build-fuzz
