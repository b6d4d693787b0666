# minivmm: plain Makefile (no Kbuild, no autotools, no cmake).
#   make              build/minivmm
#   make test-unit    Criterion unit tests (normal build)
#   make test-asan    the same unit tests under ASan+UBSan
#   make fuzz         libFuzzer targets (clang), short runs
#   make lab-test     every lab scenario (nested KVM + VFIO, see tests/lab)
#   make check-layers the include rules between the parts (ARCHITECTURE.md)
#   make test         deps, layers, build, unit, asan, fuzz (10 s each), lab: what CI runs
#   make demo         the flagship scenario in the lab
CC      ?= gcc
BUILD   ?= build
CSTD    := -std=gnu11
WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
           -Wmissing-prototypes -Wstrict-prototypes -Wcast-qual
CFLAGS  ?= -O2 -g
CPPFLAGS += -I. -D_GNU_SOURCE $(shell pkg-config --cflags slirp)
LDLIBS  += -lpthread -luring $(shell pkg-config --libs slirp || echo -lslirp) \
           $(shell pkg-config --libs libpci 2>/dev/null || echo -lpci)

# Sources are found in every folder below these (devices/ has subfolders).
SRC_DIRS := frontend vmm devices vfio host boot arch
SRCS     := $(sort $(shell find $(SRC_DIRS) -name '*.c'))
MAIN     := frontend/main.c
LIB_SRCS := $(filter-out $(MAIN),$(SRCS))
OBJS     := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRCS))
UNIT_SRCS := $(wildcard tests/unit/*.c)

# A target that compiles, run on a machine without the build deps, says how
# to get them instead of failing on the first missing header. deps, demo,
# test and lab-test install them first (tests/deps.sh).
DEPS_PROBE ?= /usr/include/liburing.h
ifeq ($(wildcard $(DEPS_PROBE)),)
ifneq ($(filter-out deps demo test lab-test check-layers clean,$(or $(MAKECMDGOALS),all)),)
$(error the build deps are missing (no /usr/include/liburing.h): run 'make deps' as root (or the apt-get line it prints), or 'make demo' / 'make test', which install them)
endif
endif

ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: check-layers all test test-unit test-asan fuzz lab-test lab-shell demo deps clean bench
all: $(BUILD)/minivmm

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(CFLAGS) $(CPPFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libminivmm.a: $(OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/minivmm: $(BUILD)/obj/frontend/main.o $(BUILD)/libminivmm.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests: one Criterion runner linking every test file with the library.
$(BUILD)/unit-tests: $(UNIT_SRCS) $(BUILD)/libminivmm.a
	$(CC) $(CSTD) $(WARN) $(CFLAGS) $(CPPFLAGS) -o $@ $(UNIT_SRCS) $(BUILD)/libminivmm.a -lcriterion $(LDLIBS)

$(BUILD)/asan/unit-tests: $(UNIT_SRCS) $(LIB_SRCS)
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(ASAN_FLAGS) $(CPPFLAGS) -o $@ $(UNIT_SRCS) $(LIB_SRCS) -lcriterion $(LDLIBS)

test-unit: $(BUILD)/unit-tests
	$(BUILD)/unit-tests --jobs 2

test-asan: $(BUILD)/asan/unit-tests
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(BUILD)/asan/unit-tests --jobs 2

# libFuzzer targets: tests/fuzz/fuzz_<name>.c, each linked with the library
# sources under ASan+UBSan. FUZZ_SECONDS per target (default 20). New inputs
# go to build/corpus/<name>; the committed seeds in tests/fuzz/corpus/<name>
# (when there are any) are read too.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))
FUZZ_SECONDS ?= 20
FUZZ_CFLAGS := $(CSTD) -Wall -Wextra -Werror -Wno-unused-parameter -Wmissing-prototypes \
               -Wstrict-prototypes -Wcast-qual -g -O1
# The library is compiled once with coverage instrumentation (fuzzer-no-link)
# and archived; each target links only what it uses.
FUZZ_OBJS := $(patsubst %.c,$(BUILD)/fuzzobj/%.o,$(LIB_SRCS))
$(BUILD)/fuzzobj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined $(CPPFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/libminivmm-fuzz.a: $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/fuzz/%: tests/fuzz/%.c $(BUILD)/libminivmm-fuzz.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined $(CPPFLAGS) -o $@ $< $(BUILD)/libminivmm-fuzz.a $(LDLIBS)
fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do mkdir -p $(BUILD)/corpus/$$(basename $$f); \
	  echo "fuzz: $$f for $(FUZZ_SECONDS)s"; \
	  seeds=tests/fuzz/corpus/$$(basename $$f); [ -d $$seeds ] || seeds=; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 $(BUILD)/corpus/$$(basename $$f) $$seeds 2>$(BUILD)/fuzz/$$(basename $$f).log \
	    || { tail -40 $(BUILD)/fuzz/$$(basename $$f).log; exit 1; }; done

deps:
	@tests/deps.sh

lab-test: deps
	$(MAKE) all
	tests/lab/lab run --all

lab-shell: all
	tests/lab/lab shell

demo: deps
	$(MAKE) all
	tests/lab/lab run demo

# The include rules of ARCHITECTURE.md (devices/ never includes vfio/, ...).
check-layers:
	tests/check-layers.sh

test: deps
	$(MAKE) check-layers
	$(MAKE) all
	$(MAKE) test-unit
	$(MAKE) test-asan
	$(MAKE) fuzz FUZZ_SECONDS=10
	$(MAKE) lab-test

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj $(BUILD)/fuzzobj -name '*.d' 2>/dev/null)
