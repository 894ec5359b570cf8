# mmspcl — build, test, install. Out-of-tree objects under build/.
CC      ?= cc
CXX     ?= c++
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Werror
OPENMP  ?= -fopenmp
ALL_CFLAGS = -std=c99 $(WARN) $(CFLAGS) $(OPENMP) -I.
LDLIBS   = -lm
PREFIX  ?= /usr/local
B        = build

HEADERS     := mmspcl.h mmspcl_train.h $(wildcard parts/*.h)
CONVERT_SRC := $(wildcard tools/convert/*.c)
CLI_SRC     := $(wildcard tools/cli/*.c)
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

$(B)/mmspcl: $(CLI_SRC) $(wildcard tools/cli/*.h) $(wildcard tools/convert/*.h) $(B)/libmmspcl.a | $(B)
	$(CC) $(ALL_CFLAGS) $(CLI_SRC) $(B)/libmmspcl.a -o $@ $(LDLIBS)

$(B)/tests/%: tests/%.c tests/test.h $(HEADERS) $(wildcard tools/convert/*.[ch]) | $(B)/tests
	$(CC) $(ALL_CFLAGS) $< -o $@ $(LDLIBS)

examples: $(EXAMPLES)
$(B)/examples/%: examples/%.c $(B)/libmmspcl.a | $(B)/examples
	$(CC) $(ALL_CFLAGS) $< $(B)/libmmspcl.a -o $@ $(LDLIBS)

$(B) $(B)/lib $(B)/tests $(B)/examples:
	mkdir -p $@

# Every test program runs from the repository root; the last line sums them all.
test: $(TESTS) $(B)/mmspcl-convert $(B)/mmspcl check-headers
	@sh tests/run.sh $(TESTS)

# The headers compile as C99 and C++11, with and without OpenMP, warnings as errors.
check-headers: | $(B)
	@for std in "$(CC) -std=c99 -x c" "$(CXX) -std=c++11 -x c++"; do for omp in "" "-fopenmp"; do \
	  $$std $(WARN) $$omp -I. -c tools/lib/mmspcl_impl.c -o $(B)/check.o || exit 1; done; done
	@echo "headers: C99 and C++11, with and without OpenMP: ok"

# The main job. (Until the shipped MELD model lands: convert and inspect the tiny test model.)
run: all
	@build/mmspcl-convert tests/data/roberta-tiny $(B)/roberta-tiny.mmw --quiet
	@build/mmspcl inspect $(B)/roberta-tiny.mmw

install: all
	mkdir -p $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig
	cp mmspcl.h mmspcl_train.h $(DESTDIR)$(PREFIX)/include/
	cp -r parts $(DESTDIR)$(PREFIX)/include/
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
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(HEADERS) $(wildcard tools/convert/*.[ch])
	@mkdir -p $(B)/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $< -o $@ -lm
# make fuzz FUZZ_SECONDS=N: each target N seconds (make -j2 fuzz runs two at a time)
fuzz: $(patsubst %,fuzz-%,$(FUZZ_TARGETS))
fuzz-%: $(B)/fuzz/fuzz_%
	@sh tests/fuzz/run.sh $* $(FUZZ_SECONDS) $<
$(B)/tests/test_fuzz_replay: $(wildcard tests/fuzz/*.[ch])
