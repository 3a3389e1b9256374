# galvc — the two commands a newcomer runs.
#   make demo    install what is missing, build, and run galvc on an example model
#   make check   install what is missing, build, and run every test through ctest
#   make install PREFIX=DIR   build, then install galvc, its runtime and manual page under DIR
# Everything else is CMake; this file only installs packages and drives it.

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
DEMO_MODEL ?= examples/gpt-tiny.gv
PREFIX     ?= /usr/local

# Debian packages the build and the tests need (xmllint, headless Chromium and
# python3 check the plan's picture).
PACKAGES := build-essential cmake flex bison pkg-config clang libclang-rt-14-dev \
            llvm-14-dev llvm-16-dev libjansson-dev libopenblas-dev libopenmpi-dev openmpi-bin man-db \
            libxml2-utils chromium python3

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build install demo check asan golden-update fuzz fuzz-profile bench bench-train clean

all: build

# Install only what dpkg does not already have, so a second run is quiet and offline.
deps:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j $(JOBS)

# galvc in PREFIX/bin, galvc-profiler in PREFIX/libexec/galvc, libgalvrt.a, galvrt.pc
# and the headers in PREFIX/lib and PREFIX/include/galvrt, the examples in
# PREFIX/share/galvc/examples, galvc(1) in PREFIX/share/man/man1. The installed
# galvc finds its runtime from its own path: the prefix can be moved.
install: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build $(BUILD) -j $(JOBS)
	cmake --install $(BUILD)

# The demo: the IR and the plan of the tiny GPT on this machine's cores, then
# the program galvc builds for that plan, trained on this README, byte level.
DEMO_RANKS ?= 2
DEMO_STEPS ?= 60
demo: build
	$(BUILD)/galvc $(DEMO_MODEL) -D ranks=$(DEMO_RANKS) --emit=ir
	$(BUILD)/galvc $(DEMO_MODEL) -D ranks=$(DEMO_RANKS) --emit=plan
	$(BUILD)/galvc $(DEMO_MODEL) -D ranks=$(DEMO_RANKS) -o $(BUILD)/train-demo
	mpirun --allow-run-as-root --oversubscribe -np $(DEMO_RANKS) $(BUILD)/train-demo --data README.md --steps $(DEMO_STEPS)

# The unit and golden tests again under AddressSanitizer + UndefinedBehaviorSanitizer,
# and emitted programs (pipelined, ZeRO-3, TP x DP with checkpointing) built and run with them.
# unit.search's brute force (every assignment of small problems, over ten minutes
# under the sanitizers) runs in the plain build only; the goldens run the search here.
asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DGALVC_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) -L 'unit|golden|sanitize' -E '^unit\.search$$'

check: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)
	$(MAKE) --no-print-directory asan

# Rewrite the golden tests' expectations from the current galvc; review with git diff.
golden-update: build
	cd tests/golden && for f in *.gv; do GOLDEN_UPDATE=1 sh run.sh ../../$(BUILD)/galvc $$f; done

# Fuzz the frontend with libFuzzer (clang): FUZZ_SECONDS of one worker. Inputs
# up to 1 MiB, so that long flat expressions and deep nesting are reachable.
FUZZ_SECONDS ?= 600
fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGALVC_FUZZ=ON -DGALVC_SANITIZE=ON
	cmake --build build-fuzz -j $(JOBS) --target fuzz_frontend
	mkdir -p build-fuzz/corpus
	build-fuzz/tests/fuzz_frontend -dict=tests/fuzz/gv.dict -max_len=1048576 -timeout=5 \
	  -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=build-fuzz/ \
	  build-fuzz/corpus tests/fuzz/corpus

# Fuzz the hardware profile reader the same way: FUZZ_SECONDS of one worker.
fuzz-profile: deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGALVC_FUZZ=ON -DGALVC_SANITIZE=ON
	cmake --build build-fuzz -j $(JOBS) --target fuzz_profile
	mkdir -p build-fuzz/profile-corpus
	build-fuzz/tests/fuzz_profile -dict=tests/fuzz/profile.dict -max_len=8192 -timeout=5 -rss_limit_mb=2048 \
	  -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=build-fuzz/ \
	  build-fuzz/profile-corpus tests/fuzz/profile-corpus

# Time the planner's search on GPT-2 XL, LLaMA-2 7B and GPT-3 175B for 8 to 16384
# devices and print a table (bench/planner.sh; BENCH_DEVICES, BENCH_TIMEOUT, ... there).
bench: build
	GALVC=$(BUILD)/galvc bash bench/planner.sh

# GPT-2 124M training speed (batch 4 x 64 tokens, fp32) against OpenBLAS sgemm.
bench-train: build
	GALVC=$(BUILD)/galvc bash bench/train_gpt2.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
