# mmspcl — build, test, install. Out-of-tree objects under build/.
CC      ?= cc
CXX     ?= c++
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Werror
OPENMP  ?= -fopenmp
ALL_CFLAGS = -std=c99 $(WARN) $(CFLAGS) $(OPENMP) -I.
LDLIBS   = -lm -pthread
PREFIX  ?= /usr/local
B        = build

HEADERS     := mmspcl.h mmspcl_train.h
CONVERT_SRC := $(wildcard tools/convert/*.c)
CLI_SRC     := $(wildcard tools/cli/*.c) tools/train/meld_recipe.c tools/train/spcl_finetune.c tools/train/ablate.c tools/train/pretrain.c tools/train/meld_heads.c
TEST_SRC    := $(wildcard tests/test_*.c)
TESTS       := $(patsubst tests/%.c,$(B)/tests/%,$(TEST_SRC))
EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLES    := $(patsubst examples/%.c,$(B)/examples/%,$(EXAMPLE_SRC))

.PHONY: all test clean install check-headers examples run
all: $(B)/mmspcl-convert $(B)/mmspcl $(B)/libmmspcl.a examples

$(B)/lib/mmspcl.o: tools/lib/mmspcl_impl.c $(HEADERS) | $(B)/lib
	$(CC) $(ALL_CFLAGS) -c $< -o $@
$(B)/libmmspcl.a: $(B)/lib/mmspcl.o
	ar rcs $@ $^

$(B)/mmspcl-convert: $(CONVERT_SRC) $(wildcard tools/convert/*.h) $(B)/libmmspcl.a | $(B)
	$(CC) $(ALL_CFLAGS) $(CONVERT_SRC) $(B)/libmmspcl.a -o $@ $(LDLIBS)

$(B)/mmspcl: $(CLI_SRC) $(wildcard tools/cli/*.h) $(wildcard tools/convert/*.h) $(wildcard tools/train/*.h) $(B)/libmmspcl.a | $(B)
	$(CC) $(ALL_CFLAGS) $(CLI_SRC) $(B)/libmmspcl.a -o $@ $(LDLIBS)

$(B)/tests/%: tests/%.c tests/test.h $(HEADERS) $(wildcard tools/convert/*.[ch]) $(wildcard tools/train/*.[ch]) | $(B)/tests
	$(CC) $(ALL_CFLAGS) $< -o $@ $(LDLIBS)

examples: $(EXAMPLES) $(B)/align_task
# the synthetic alignment task of docs/FUSION.md (libc only)
$(B)/align_task: tools/synth/align_task.c | $(B)
	$(CC) $(ALL_CFLAGS) $< -o $@ $(LDLIBS)
$(B)/examples/%: examples/%.c $(wildcard tools/train/*.[ch]) $(B)/libmmspcl.a | $(B)/examples
	$(CC) $(ALL_CFLAGS) $< $(B)/libmmspcl.a -o $@ $(LDLIBS)

$(B) $(B)/lib $(B)/tests $(B)/examples:
	mkdir -p $@

# Every test program runs from the repository root; the last line sums them all.
# Every test program compiles both headers whole: the programs are built TEST_JOBS at a time
# (default 2, the cores of the smallest machine we test on), which halves the wall time.
TEST_JOBS ?= 2
test: check-headers
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) $(TESTS) $(B)/mmspcl-convert $(B)/mmspcl examples
	@sh tests/run.sh $(TESTS)

# The headers compile as C99 and C++11, with and without OpenMP, warnings as errors.
check-headers: | $(B)
	@for std in "$(CC) -std=c99 -x c" "$(CXX) -std=c++11 -x c++"; do for omp in "" "-fopenmp"; do for opt in -O0 -O2; do \
	  $$std $(WARN) $$omp $$opt -I. -c tools/lib/check_both.c -o $(B)/check.o || exit 1; done; done; done
	@echo "headers: C99 and C++11, -O0 and -O2, with and without OpenMP: ok"

# The main job: the emotion and sentiment of each utterance of a dialogue, with the shipped model.
run: $(B)/mmspcl
	@build/mmspcl classify -m weights/meld-text-q8_0.mmw examples/dialogue.txt

# Issue 18's text model (docs/MELD.md, "Pretrained encoder, out-of-fold heads"): hours of CPU,
# resumable: run the same target again to continue. MODEL_DIR holds every stage's output.
MODEL_DIR ?= build/meld-model
.PHONY: pretrain meld-model
pretrain: $(B)/mmspcl
	ONLY_PRETRAIN=1 tools/train/meld_model.sh $(MODEL_DIR)
meld-model: $(B)/mmspcl
	tools/train/meld_model.sh $(MODEL_DIR)

install: all
	mkdir -p $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig
	cp mmspcl.h mmspcl_train.h $(DESTDIR)$(PREFIX)/include/
	cp $(B)/libmmspcl.a $(DESTDIR)$(PREFIX)/lib/
	cp $(B)/mmspcl $(B)/mmspcl-convert $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@OPENMP@|$(OPENMP)|' tools/mmspcl.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/mmspcl.pc

clean:
	rm -rf $(B)

# ---- Robustness (docs/ROBUSTNESS.md): fuzzing, sanitizers, valgrind, ARM -------------------
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_FLAGS    = -std=c99 -g -O1 -Wall -Wextra -Werror -I. -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
.PHONY: fuzz fuzz-build test-sanitize test-valgrind test-arm
fuzz-build: $(patsubst %,$(B)/fuzz/fuzz_%,$(FUZZ_TARGETS))
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(HEADERS) $(wildcard tools/convert/*.[ch]) $(wildcard tools/train/*.[ch])
	@mkdir -p $(B)/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $< -o $@ -lm
# make fuzz FUZZ_SECONDS=N: each target N seconds (make -j2 fuzz runs two at a time)
fuzz: $(patsubst %,fuzz-%,$(FUZZ_TARGETS))
fuzz-%: $(B)/fuzz/fuzz_%
	@sh tests/fuzz/run.sh $* $(FUZZ_SECONDS) $<
$(B)/tests/test_fuzz_replay: $(wildcard tests/fuzz/*.[ch])

# The sanitizer, valgrind and ARM runs use a mirror of the repository root, $(B)/<kind>/root:
# tests/, examples/, weights/, tools/ and ../shared are links to the real ones, build/ holds that
# kind's own tools, examples and tests, so every path a test uses (build/mmspcl-convert,
# build/mmspcl, build/examples/*, build/tests/tmp, tests/data, weights/, ../shared) resolves inside
# the mirror and no test needs to change.
TEST_NAMES := $(patsubst tests/%.c,%,$(TEST_SRC))
EXAMPLE_NAMES := $(patsubst examples/%.c,%,$(EXAMPLE_SRC))
MIRROR      = mkdir -p $(1)/build/tests $(1)/build/examples && ln -sfn ../../../tests $(1)/tests && \
              ln -sfn ../../../examples $(1)/examples && ln -sfn ../../../weights $(1)/weights && \
              ln -sfn ../../../tools $(1)/tools && ln -sfn ../../../shared $(1)/../shared
SAN_ROOT   := $(B)/sanitize/root
SAN_FLAGS  ?= -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_REPORT  = $(CURDIR)/$(B)/sanitize/report
# Whole unit suite, converter and CLI under ASan + UBSan (gcc). Reports of every process, the tools
# the tests start included, go to $(B)/sanitize/report.*: any report fails the target.
test-sanitize:
	@$(MAKE) --no-print-directory B=$(SAN_ROOT)/build CC=gcc CFLAGS="-O1 -g $(SAN_FLAGS)" \
	  $(SAN_ROOT)/build/mmspcl-convert $(SAN_ROOT)/build/mmspcl $(patsubst %,$(SAN_ROOT)/build/tests/%,$(TEST_NAMES)) \
	  $(patsubst %,$(SAN_ROOT)/build/examples/%,$(EXAMPLE_NAMES)) $(SAN_ROOT)/build/align_task
	@$(call MIRROR,$(SAN_ROOT))
	@rm -f $(SAN_REPORT).*
	@cd $(SAN_ROOT) && ASAN_OPTIONS=log_path=$(SAN_REPORT):detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=log_path=$(SAN_REPORT):print_stacktrace=1:halt_on_error=1 \
	  sh tests/run.sh $(patsubst %,build/tests/%,$(TEST_NAMES)); rc=$$?; \
	  if ls $(SAN_REPORT).* >/dev/null 2>&1; then cat $(SAN_REPORT).*; echo "test-sanitize: sanitizer reports above"; exit 1; fi; \
	  [ $$rc -eq 0 ] && echo "test-sanitize: ASan + UBSan: no report"

# valgrind memcheck over the tools' main paths and a few unit tests (tests/fuzz/valgrind.sh), on a
# build of their own. VG_TESTS: the unit tests run whole under valgrind (small and quick ones).
VG_B := $(B)/valgrind
VG_TESTS ?= test_prune test_outputs
test-valgrind:
	@$(MAKE) --no-print-directory B=$(VG_B) CFLAGS="-O2 -g" $(VG_B)/mmspcl-convert $(VG_B)/mmspcl $(patsubst %,$(VG_B)/tests/%,$(VG_TESTS))
	@OMP_NUM_THREADS=2 VG_TESTS="$(VG_TESTS)" sh tests/fuzz/valgrind.sh $(VG_B)

# AArch64: the unit suite cross-compiled with and without OpenMP, run under qemu-user; the
# mirror's build/ holds wrapper scripts that start each program under qemu, so the tools the
# tests call run as ARM code too. 32-bit ARM: the library compiles, warnings as errors.
# Needs: apt-get install -y gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf qemu-user
ARM64_CC   ?= aarch64-linux-gnu-gcc
ARM32_CC   ?= arm-linux-gnueabihf-gcc
QEMU_ARM64 ?= qemu-aarch64 -L /usr/aarch64-linux-gnu
ARM_VARIANTS := omp:-fopenmp noomp:
# Debian 12's aarch64-linux-gnu-gcc 12 crashes (internal compiler error in vect_transform_reduction)
# on tests/test_spcl.c at -O2 -fopenmp: no loop auto-vectorisation there (NEON intrinsics unaffected).
ARM64_CFLAGS ?= -O2 -g -fno-tree-loop-vectorize
test-arm:
	@for omp in "" -fopenmp; do $(ARM32_CC) -std=c99 $(WARN) $$omp -O2 -I. -c tools/lib/mmspcl_impl.c -o $(B)/arm32-check.o || exit 1; done
	@echo "== 32-bit ARM (armhf): the library compiles with $(WARN), with and without OpenMP"
	@for v in $(ARM_VARIANTS); do name=$${v%%:*}; omp=$${v#*:}; bin=$(B)/arm64-$$name/bin; root=$(B)/arm64-$$name/root; \
	  $(MAKE) --no-print-directory B=$$bin CC=$(ARM64_CC) OPENMP="$$omp" CFLAGS="$(ARM64_CFLAGS)" \
	    $$bin/mmspcl-convert $$bin/mmspcl $$bin/align_task $(patsubst %,$$bin/tests/%,$(TEST_NAMES)) $(patsubst %,$$bin/examples/%,$(EXAMPLE_NAMES)) || exit 1; \
	  $(call MIRROR,$$root); \
	  for p in mmspcl mmspcl-convert align_task $(patsubst %,tests/%,$(TEST_NAMES)) $(patsubst %,examples/%,$(EXAMPLE_NAMES)); do \
	    printf '#!/bin/sh\nexec %s %s "$$@"\n' "$(QEMU_ARM64)" "$(CURDIR)/$$bin/$$p" > $$root/build/$$p; chmod +x $$root/build/$$p; done; \
	  echo "== AArch64 ($${omp:-no OpenMP}) under qemu"; \
	  (cd $$root && OMP_NUM_THREADS=2 sh tests/run.sh $(patsubst %,build/tests/%,$(TEST_NAMES))) || exit 1; done

# Speed (not part of make test): random-weight RoBERTa-large / ViT-B/32 shaped files in $(B)/bench
# and build/mmspcl bench on them (tools/bench/bench.sh; THREADS, REPS, SEQ from the environment).
# The comparison with ONNX Runtime and PyTorch: tools/bench/compare.py (docs/PERFORMANCE.md).
.PHONY: bench
bench: $(B)/mmspcl $(B)/bench-make-weights
	@B=$(B) sh tools/bench/bench.sh
$(B)/bench-make-weights: tools/bench/make_weights.c $(B)/libmmspcl.a
	$(CC) $(ALL_CFLAGS) tools/bench/make_weights.c $(B)/libmmspcl.a -o $@ $(LDLIBS)
# Threads on a busy machine (issue 19): tools/bench/threads.sh (ROUNDS, EVAL_ROWS from the environment).
.PHONY: bench-threads
bench-threads: $(B)/mmspcl $(B)/bench-make-weights
	@B=$(B) sh tools/bench/threads.sh
