# Thin wrapper around CMake. `make run` and `make test` are the README's two commands:
# both install what is missing (Debian packages, npm modules) before building.
BUILD  ?= build
ASAN   ?= OFF
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
ARGS   ?=
CTEST_ARGS ?=

.PHONY: all deps build run test test-asan test-container format clean bench

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
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE container $(CTEST_ARGS)

# The image and docker-compose under podman (tests/container/run.sh): root, a few minutes cold.
test-container: build
	cd $(BUILD) && ctest --output-on-failure -L container $(CTEST_ARGS)

test-asan:
	$(MAKE) test BUILD=build-asan ASAN=ON

bench: deps build
	bench/run.sh ./$(BUILD)/smtpfault

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-asan
