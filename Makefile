# lode - a terminal coding agent with its own inference engine for Qwen3.6-35B-A3B.
#
#   make            build build/lode (CUDA kernels too when nvcc is found)
#   make run        install missing system packages, build, start lode
#   make test       install missing system packages, build, run every CPU test
#   make test-deps  build the Python reference environment the comparison tests use
#   make test-gpu   build and run the GPU tests (needs a CUDA GPU)
#   make asan       unit tests under AddressSanitizer + UBSan (build/asan/)
#   make fuzz       libFuzzer targets (clang, build/fuzz/); make fuzz-run FUZZ=name TIME=600
#   make check-deps enforce the folder dependency direction
#   make format     clang-format every C/CUDA source
#
# Knobs: V=1 (show commands), CUDA=0|1 (default: 1 when nvcc exists), CUDA_ARCHS="sm_80 sm_86 sm_89 sm_90",
#        BUILD=dir, OPT=-O2, CC=cc, SANITIZE=address|fuzz (internal).

BUILD    ?= build
V        ?= 0
Q        := $(if $(filter 1,$(V)),,@)
CC       ?= cc
OPT      ?= -O2
SANITIZE ?=

PKGS := ncursesw libcurl sqlite3 libcjson libpcre2-8 libutf8proc
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN   := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation -Wshadow \
          -Wpointer-arith -Wvla
CFLAGS := -std=gnu11 -D_GNU_SOURCE -I. $(OPT) -g $(WARN) -fno-strict-aliasing -pthread \
          -MMD -MP $(PKG_CFLAGS)
LDLIBS := $(PKG_LIBS) -lm -lpthread -ldl

ifeq ($(SANITIZE),address)
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
  CUDA := 0
endif
ifeq ($(SANITIZE),fuzz)
  CC      := clang
  CFLAGS  += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -DLODE_FUZZING \
             -Wno-unknown-warning-option
  LDFLAGS += -fsanitize=address,undefined
  CUDA := 0
endif

# ---- CUDA: built only when nvcc exists, unless CUDA=0
NVCC ?= $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
ifeq ($(CUDA),)
  CUDA := $(if $(NVCC),1,0)
endif
CUDA_ARCHS ?= sm_80 sm_86 sm_89 sm_90
ifeq ($(CUDA),1)
  CUDA_HOME := $(patsubst %/bin/nvcc,%,$(NVCC))
  CUDA_GENCODE := $(foreach a,$(patsubst sm_%,%,$(CUDA_ARCHS)),-gencode arch=compute_$(a),code=sm_$(a))
  NVCCFLAGS := -std=c++17 -O3 -g -I. -DLODE_CUDA=1 $(CUDA_GENCODE) --Werror all-warnings \
               -Xcompiler -Wall,-Wextra,-Werror,-Wno-unused-parameter,-fno-strict-aliasing
  CFLAGS += -DLODE_CUDA=1
  LDLIBS += -L$(CUDA_HOME)/lib64 -lcudart_static -lrt -lstdc++
endif

# ---- sources: one archive per folder, linked in dependency order
LAYERS := app engine kernels tools db ui config common
SRC_common  := $(wildcard common/*.c)
SRC_config  := $(wildcard config/*.c)
SRC_ui      := $(wildcard ui/*.c)
SRC_db      := $(wildcard db/*.c)
SRC_tools   := $(wildcard tools/*.c)
SRC_kernels := $(wildcard kernels/*.c kernels/cpu/*.c)
SRC_engine  := $(wildcard engine/*.c)
SRC_app     := $(filter-out app/main.c,$(wildcard app/*.c))
CU_kernels  := $(if $(filter 1,$(CUDA)),$(wildcard kernels/cuda/*.cu))

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
LIBS := $(foreach l,$(LAYERS),$(BUILD)/lib$(l).a)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/unit/%)
GPU_SRCS  := $(wildcard tests/gpu/test_*.c)
GPU_BINS  := $(GPU_SRCS:tests/gpu/%.c=$(BUILD)/tests/gpu/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/tests/fuzz/%)

.PHONY: all run deps test test-unit test-deps test-gpu asan fuzz fuzz-run check-deps format \
        format-check clean FORCE
.DELETE_ON_ERROR:

all: $(BUILD)/lode

# Objects depend on the flags they were built with, so `make CUDA=0` after a
# CUDA build (or a new OPT) rebuilds instead of mixing object files.
$(BUILD)/flags.txt: FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(CFLAGS) $(NVCCFLAGS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS) $(NVCCFLAGS)' > $@

$(BUILD)/%.o: %.c $(BUILD)/flags.txt
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# SIMD kernels: each instruction-set file gets its own flags; the dispatcher
# picks one at run time from cpuid.
$(BUILD)/kernels/cpu/%_avx2.o: CFLAGS += -mavx2 -mfma -mf16c
$(BUILD)/kernels/cpu/%_avx512.o: CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c

$(BUILD)/%.cu.o: %.cu $(BUILD)/flags.txt
	@mkdir -p $(@D)
	@$(if $(Q),echo "  NVCC    $<")
	$(Q)$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

define archive_rule
$(BUILD)/lib$(1).a: $(call obj,$(SRC_$(1))) $(if $(filter kernels,$(1)),$(CU_kernels:%.cu=$(BUILD)/%.cu.o))
	@mkdir -p $$(@D)
	@rm -f $$@
	$(Q)ar rcs $$@ $$^
endef
$(foreach l,$(LAYERS),$(eval $(call archive_rule,$(l))))

$(BUILD)/lode: $(BUILD)/app/main.o $(LIBS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

$(BUILD)/tests/unit/%: tests/unit/%.c tests/unit/testhelp.h $(LIBS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

$(BUILD)/tests/gpu/%: tests/gpu/%.c tests/unit/testhelp.h $(LIBS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)

# Fuzz targets: with SANITIZE=fuzz they link libFuzzer; otherwise the plain
# driver replays the committed corpus (tests/fuzz/<name>/) in `make test`.
ifeq ($(SANITIZE),fuzz)
$(BUILD)/tests/fuzz/%: tests/fuzz/%.c $(LIBS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $< $(LIBS) $(LDLIBS)
else
$(BUILD)/tests/fuzz/%: tests/fuzz/%.c tests/fuzz/driver.c $(LIBS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< tests/fuzz/driver.c $(LIBS) $(LDLIBS)
endif

# ---- everyday targets
deps:
	@scripts/deps

run: deps all
	./$(BUILD)/lode

test-deps:
	@scripts/test-venv --install

test: deps
	@$(MAKE) --no-print-directory all tests-build
	@BUILD=$(BUILD) tests/run

tests-build: $(UNIT_BINS) $(FUZZ_BINS)

test-unit: $(UNIT_BINS) $(FUZZ_BINS)
	@BUILD=$(BUILD) tests/run --unit

test-gpu: deps
	@$(MAKE) --no-print-directory CUDA=1 all $(GPU_BINS)
	@BUILD=$(BUILD) tests/run --gpu

asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=address OPT=-O1 test-unit

fuzz:
	@$(MAKE) --no-print-directory BUILD=build/fuzz SANITIZE=fuzz OPT=-O1 fuzz-bins

fuzz-bins: $(FUZZ_BINS)

# make fuzz-run FUZZ=fuzz_config TIME=600: fuzz one target, new inputs kept in
# build/fuzz/corpus/<name> (seeds stay in tests/fuzz/<name>).
TIME ?= 60
fuzz-run: fuzz
	@test -n "$(FUZZ)" || { echo "usage: make fuzz-run FUZZ=<name> [TIME=seconds]"; exit 2; }
	@mkdir -p build/fuzz/corpus/$(FUZZ)
	build/fuzz/tests/fuzz/$(FUZZ) -max_total_time=$(TIME) -rss_limit_mb=2048 -malloc_limit_mb=1024 \
	    build/fuzz/corpus/$(FUZZ) tests/fuzz/$(FUZZ)

check-deps:
	@scripts/check-deps

FORMAT_SRCS = $(shell git ls-files '*.c' '*.h' '*.cu' '*.cuh' 2>/dev/null)
format:
	clang-format -i $(FORMAT_SRCS)

format-check:
	clang-format --dry-run --Werror $(FORMAT_SRCS)

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
