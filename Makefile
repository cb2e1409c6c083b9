# Entry points. `make test` is what CI runs (.ci/run).
#   make deps       Debian packages + Kafka jars (scripts/deps.sh), the S3
#                   server for tests (deps-s3.sh), deploy checkers
#                   (deps-helm.sh), the CUDA compiler from PyPI wheels
#                   (deps-cuda.sh); all idempotent, cached in .deps/
#   make build      release build (RelWithDebInfo) in build/
#   make build-asan ASan+UBSan build in build-asan/
#   make test       deps, ASan build, every ctest label (unit + integration,
#                   the `stack` fixture starts a broker and Redis), then
#                   valgrind memcheck of the unit suites on the release build
#   make demo       deps, build, then scripts/demo.sh (stack in run/demo)
#   make stop       stops the demo stack
JOBS ?= 2
BUILD ?= build
ASAN_BUILD ?= build-asan
CTEST_ARGS ?=
# CUDA kernels: AUTO builds them when nvcc is found (scripts/deps-cuda.sh
# installs one); `make test` insists (ON), so CI proves they compile.
CUDA ?= AUTO

.PHONY: all deps build build-asan test test-asan memcheck demo stop clean checkpoint

all: build

deps:
	scripts/deps.sh
	scripts/deps-s3.sh
	scripts/deps-helm.sh
	scripts/deps-cuda.sh >/dev/null

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCASCADE_SANITIZE=OFF -DCASCADE_CUDA=$(CUDA)
	cmake --build $(BUILD) -j$(JOBS)

build-asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCASCADE_SANITIZE=ON -DCASCADE_CUDA=$(CUDA)
	cmake --build $(ASAN_BUILD) -j$(JOBS)

# ASan/UBSan findings fail the test that hit them; leaks are reported at
# exit of each process.
test-asan: build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -j$(JOBS) $(CTEST_ARGS)

memcheck: build
	tests/harness/memcheck.py $(BUILD)

# Both halves run even when the first fails, so one CI run reports both.
test: deps
	@rc=0; $(MAKE) test-asan CUDA=ON || rc=1; $(MAKE) memcheck CUDA=ON || rc=1; \
	if [ $$rc -ne 0 ]; then echo "make test: FAILED (see above)"; fi; exit $$rc

demo: deps build checkpoint
	scripts/demo.sh

stop:
	scripts/stack.sh stop run/demo

# The fitted checkpoint ref-cxr-v1 in .deps/checkpoints (phantom training set
# + cxfit; skipped when up to date). scripts/checkpoint.sh has the knobs.
checkpoint: build
	CASCADE_BIN=$(BUILD)/bin scripts/checkpoint.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
