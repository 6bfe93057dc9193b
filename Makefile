# RandLora C harness -- build, test, sanitizers.
#
#   make            build/randlora (CLI) and build/librandlora.a
#   make test       build and run the Criterion tests (build/tests/run)
#   make asan       the same tests under AddressSanitizer + UBSan (build/asan/)
#   make fuzz       libFuzzer on every reader of files, FUZZ_S seconds each
#   make run        the main job (see README)
#
# Flags come from pkg-config. OpenBLAS is linked after GSL so that GSL's
# cblas calls bind to OpenBLAS, not to libgslcblas (toolchain.md §4).

SHELL   := /bin/bash
CC      ?= cc
BUILD   ?= build

# make MPI=1: the same tool built with OpenMPI (libopenmpi-dev) into
# build/mpi/randlora; `mpirun -np N build/mpi/randlora sweep ...` spreads a
# sweep's points over the ranks.
ifeq ($(MPI),1)
BUILD   := build/mpi
CC      := mpicc
EXTRA_CFLAGS += -DRL_MPI
endif
# OpenBLAS's OpenMP flavour (libopenblas-openmp-dev): BLAS and the library's
# element-wise loops then share one OpenMP pool of threads (lib/core/rl_blas.h).
# The system-wide alternative points at the pthread flavour, so the flavour's
# folder goes first in the run-time search path, as DT_RPATH (not RUNPATH):
# it then also serves liblapacke's own liblapack.so.3 / libblas.so.3, and the
# process holds one OpenBLAS. Without that folder the default flavour is used
# and the element-wise loops stay on one thread. OPENBLAS_DIR= (empty) forces that.
MULTIARCH   := $(shell $(CC) -print-multiarch 2>/dev/null)
OPENBLAS_DIR ?= /usr/lib/$(MULTIARCH)/openblas-openmp
ifneq ($(OPENBLAS_DIR),)
ifneq ($(wildcard $(OPENBLAS_DIR)/pkgconfig/openblas.pc),)
BLAS_PC    := PKG_CONFIG_PATH=$(OPENBLAS_DIR)/pkgconfig
BLAS_RPATH := -Wl,--disable-new-dtags,-rpath,$(OPENBLAS_DIR)
endif
endif
PKGS    := lapacke gsl jansson zlib
PKG_CFLAGS := $(shell $(BLAS_PC) pkg-config --cflags openblas 2>/dev/null) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs jansson zlib 2>/dev/null) -llapacke -lgsl $(shell $(BLAS_PC) pkg-config --libs openblas 2>/dev/null) $(BLAS_RPATH) -lmvec -lm
CRIT_CFLAGS := $(shell pkg-config --cflags criterion 2>/dev/null)
CRIT_LIBS   := $(shell pkg-config --libs criterion 2>/dev/null)

OPT     ?= -O2
CSTD    := -std=c11 -D_POSIX_C_SOURCE=200809L
# No errno from sqrtf and friends (nothing reads it): sqrt stays one instruction,
# so loops that take it (AdamW) run as vector lanes; no result changes.
MATH    := -fno-math-errno
WARN    := -Wall -Wextra -Werror
CFLAGS  := $(CSTD) $(OPT) $(MATH) -g -fopenmp $(WARN) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS := -fopenmp $(EXTRA_LDFLAGS)

LIB_SRC  := $(sort $(wildcard lib/*/*.c datasets/*.c))
EXP_SRC  := $(sort $(wildcard experiments/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
EXP_OBJ  := $(EXP_SRC:%.c=$(BUILD)/obj/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)
INCLUDES := -I. -Ilib -Iexperiments

.PHONY: all deps test asan fuzz run bench clean
all: $(BUILD)/randlora $(BUILD)/librandlora.a

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INCLUDES) -MMD -MP -c $< -o $@

# The source a build came from (rl_source_id: manifests and `bench --machine`
# record it): the commit, "+changes" when the code (lib, datasets,
# experiments, Makefile) differed from it when built, "unknown" outside a git
# checkout. $(BUILD)/source_id.h is rewritten only when that changes, so only
# rl_results.o is rebuilt then.
# (git diff --quiet exits 1 for differences only, 128 outside a checkout)
SOURCE_ID := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell \
    git diff --quiet HEAD -- lib datasets experiments Makefile 2>/dev/null; [ $$? -eq 1 ] && echo +changes)
.PHONY: FORCE
$(BUILD)/source_id.h: FORCE
	@mkdir -p $(dir $@)
	@echo '#define RL_SOURCE_ID "$(SOURCE_ID)"' > $@.tmp; if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi
$(BUILD)/obj/lib/io/rl_results.o: $(BUILD)/source_id.h
$(BUILD)/obj/lib/io/rl_results.o: INCLUDES += -I$(BUILD)

$(BUILD)/obj/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CRIT_CFLAGS) $(INCLUDES) -MMD -MP -c $< -o $@

$(BUILD)/librandlora.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The CLI: experiments/*.c hold the commands; experiments/main.c dispatches.
$(BUILD)/randlora: $(EXP_OBJ) $(BUILD)/librandlora.a
	$(CC) $(CFLAGS) $(LDFLAGS) $(EXP_OBJ) $(BUILD)/librandlora.a $(PKG_LIBS) -o $@

# One Criterion runner for every tests/test_*.c; it also links the command
# modules (not main.c) so the CLI commands are tested in-process.
TEST_EXP_OBJ := $(filter-out $(BUILD)/obj/experiments/main.o,$(EXP_OBJ))
$(BUILD)/tests/run: $(TEST_OBJ) $(TEST_EXP_OBJ) $(BUILD)/librandlora.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $(TEST_OBJ) $(TEST_EXP_OBJ) $(BUILD)/librandlora.a $(CRIT_LIBS) $(PKG_LIBS) -o $@

# `make test` and `make run` first install missing Debian packages (a no-op
# when all are present), then re-enter make so that pkg-config sees them.
deps:
	@bash .ci/install-deps

test: deps
	$(MAKE) --no-print-directory $(BUILD)/tests/run $(BUILD)/randlora
	$(BUILD)/tests/run $(TEST_ARGS)

SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# Criterion reports a test that leaks as passing (LeakSanitizer prints in the
# worker, whose exit status is not used), so the log is searched as well.
asan:
	@bash .ci/install-deps
	$(MAKE) BUILD=build/asan OPT=-O1 EXTRA_CFLAGS="$(SAN)" EXTRA_LDFLAGS="$(SAN)" build/asan/tests/run build/asan/randlora
	set -o pipefail; build/asan/tests/run $(TEST_ARGS) 2>&1 | tee build/asan/test.log
	@if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' build/asan/test.log; then \
	    echo "make asan: sanitizer reports above (build/asan/test.log)"; exit 1; fi
	build/asan/randlora parity tests/fixtures/peft/*.safetensors tests/fixtures/peft_extra/*.safetensors > build/asan/parity.log 2>&1; \
	    st=$$?; tail -1 build/asan/parity.log; \
	    if [ $$st -ne 0 ] || grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' build/asan/parity.log; then \
	    cat build/asan/parity.log; exit 1; fi

# make fuzz FUZZ_S=N: the libFuzzer harnesses of tests/fuzz/ (one per reader
# of files: safetensors, PEFT directories, parity files, IDX, digits CSV,
# results tables), built with clang under ASan + UBSan into build/fuzz/, each
# run N seconds (default 60) from seeds made from the test fixtures
# (tests/fuzz/seeds.sh); the corpora grow in build/fuzz/corpus/, a crash
# leaves its input in build/fuzz/crashes/ and fails the target. Not part of
# `make test`; CI runs it after the tests with FUZZ_S=15. -Wno-pass-failed:
# at -O1 clang does not vectorise, and reports each `omp ... simd` hint
# (RL_PAR_FOR_SIMD, a hint, not a requirement) it did not follow as a warning.
FUZZ_S ?= 60
FUZZ_TARGETS := safetensors peft parity idx digits results
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_SRC := $(sort $(wildcard tests/fuzz/*.c))
fuzz:
	@bash .ci/install-deps --fuzz
	$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang OPT=-O1 \
	    EXTRA_CFLAGS="$(FUZZ_SAN) -fsanitize=fuzzer-no-link -Wno-pass-failed" EXTRA_LDFLAGS="$(FUZZ_SAN)" \
	    $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	bash tests/fuzz/seeds.sh build/fuzz/seeds
	@mkdir -p build/fuzz/crashes
	@set -e; for t in $(FUZZ_TARGETS); do \
	    mkdir -p build/fuzz/corpus/$$t; \
	    echo "fuzz_$$t: $(FUZZ_S) s"; \
	    if ! build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_S) -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
	        -artifact_prefix=build/fuzz/crashes/$$t- build/fuzz/corpus/$$t build/fuzz/seeds/$$t \
	        > build/fuzz/$$t.log 2>&1; then \
	        cat build/fuzz/$$t.log; echo "make fuzz: fuzz_$$t failed (input in build/fuzz/crashes/)"; exit 1; fi; \
	    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^Done' build/fuzz/$$t.log | tr '\n' ' '; echo; \
	done

# A harness links the command modules (not main.c) and the library.
.PRECIOUS: $(BUILD)/obj/tests/fuzz/%.o
$(BUILD)/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(TEST_EXP_OBJ) $(BUILD)/librandlora.a
	$(CC) $(CFLAGS) $(LDFLAGS) -fsanitize=fuzzer $< $(TEST_EXP_OBJ) $(BUILD)/librandlora.a $(PKG_LIBS) -o $@

# The main job: install what is missing, build, run every experiment at its
# quick setting (FULL=1: the full settings), render the plots into plots/out/
# and write results/REPORT.md. Sweeps resume: interrupt `make run` and start
# it again, finished points are not recomputed.
RUN_FLAGS := $(if $(filter 1,$(FULL)),--full,)
# worker processes of the protocol's sweeps (finetune, vit, teacher): one per core
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
R := $(BUILD)/randlora
run: deps
	$(MAKE) --no-print-directory all
	@mkdir -p results/parity results/params
	$(R) parity --out results/parity/parity.csv tests/fixtures/peft/*.safetensors tests/fixtures/peft_extra/*.safetensors
	{ $(R) params --arch llama-3.2-3b --targets q_proj,v_proj --method randlora --r 32 --csv && \
	  for mr in "lora 32" "lora 64" "vera 256"; do set -- $$mr; \
	    $(R) params --arch llama-3.2-3b --targets q_proj,v_proj --method $$1 --r $$2 --csv | tail -n 1; done; \
	} > results/params/anchors.csv.tmp && mv results/params/anchors.csv.tmp results/params/anchors.csv
	$(R) params --arch all --csv > results/params/architectures.csv.tmp && mv results/params/architectures.csv.tmp results/params/architectures.csv
	$(R) sweep rank $(RUN_FLAGS)
	$(R) sweep cost $(RUN_FLAGS)
	$(R) sweep expressivity $(RUN_FLAGS)
	$(R) sweep finetune $(RUN_FLAGS) --jobs $(JOBS)
	$(R) sweep similarity $(RUN_FLAGS)
	$(R) sweep vit $(RUN_FLAGS) --jobs $(JOBS)
	$(R) sweep teacher $(RUN_FLAGS) --jobs $(JOBS)
	$(R) report

# The performance targets (issue 13), measured (never a timed test):
# experiments/bench.sh runs this tool and PyTorch like for like in interleaved
# rounds (ROUNDS, default 3), the two taking turns step by step (lockstep) and
# a one-thread pair on one CPU -- single layers with and without dx, a 4-layer
# stack, a whole ViT step, the stack at 1 thread against itself at 2, and
# RandLora's layer against LoRA's -- and writes results/bench/{machine,
# compare_c,compare_pytorch,compare_scaling,compare_ratio,compare,targets,
# targets_runs,bench}.csv (a copy of the rounds kept in results/bench/runs/),
# then the report. PyTorch runs
# PEFT's own layers when PEFT_SRC names a PEFT checkout (make bench
# PEFT_SRC=path), else the transcription experiments/reference/peft_step.py
# (labelled so); without Debian's python3-torch the C side alone is measured.
PEFT_SRC ?=
ROUNDS   ?= 3
bench: deps
	$(MAKE) --no-print-directory all
	R=$(R) OUT=results/bench ROUNDS=$(ROUNDS) PEFT_SRC=$(PEFT_SRC) OPENBLAS_DIR=$(OPENBLAS_DIR) bash experiments/bench.sh
	$(R) report

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(EXP_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(FUZZ_SRC:%.c=$(BUILD)/obj/%.d)
