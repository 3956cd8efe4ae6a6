# Thin wrapper around CMake. `make run` and `make test` are the README's two commands:
# both install what is missing (Debian packages, npm modules) before building.
BUILD  ?= build
ASAN   ?= OFF
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
ARGS   ?=
CTEST_ARGS ?=
FUZZ_SECONDS ?= 60

.PHONY: all deps build run test test-asan test-valgrind test-container fuzz format clean bench bench-tls bench-load bench-soak bench-node

all: build

deps:
	@.ci/install-deps

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DASAN=$(ASAN)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: deps build
	./$(BUILD)/smtpfault $(ARGS)

test: deps build
	@.ci/install-deps --test
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# Only the image and docker-compose under podman (tests/container/run.sh; root, about 2 minutes cold).
test-container: deps build
	cd $(BUILD) && ctest --output-on-failure -L container $(CTEST_ARGS)

# The suite under ASan + UBSan; the container test builds its own image, so it has nothing to add here.
test-asan:
	$(MAKE) test BUILD=build-asan ASAN=ON CTEST_ARGS="-LE container $(CTEST_ARGS)"

# Every end-to-end test with each server under valgrind memcheck: a leak or memory error fails the test.
test-valgrind: deps build
	@.ci/install-deps --test
	cd $(BUILD) && SMTPFAULT_VALGRIND=1 ctest --output-on-failure -j $(JOBS) -L e2e -LE container --timeout 1200 $(CTEST_ARGS)

fuzz: deps
	tests/fuzz/run.sh $(FUZZ_SECONDS)

bench: deps build
	bench/run.sh ./$(BUILD)/smtpfault

# TLS against Nodemailer's smtp-server (pinned by bench/node/package-lock.json), load, and soak;
# see docs/performance.md. ARGS passes options, e.g. make bench-soak ARGS="--messages 50000".
bench-node:
	@if [ ! -d bench/node/node_modules ] || [ bench/node/package-lock.json -nt bench/node/node_modules ]; then \
	  (cd bench/node && npm ci --no-audit --no-fund --loglevel=error) && touch bench/node/node_modules; fi

bench-tls: deps build bench-node
	/usr/bin/python3 bench/tls_bench.py ./$(BUILD)/smtpfault $(ARGS)

bench-load: deps build
	/usr/bin/python3 bench/load.py ./$(BUILD)/smtpfault $(ARGS)

bench-soak: deps build
	/usr/bin/python3 bench/soak.py ./$(BUILD)/smtpfault $(ARGS)

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan build-fuzz
