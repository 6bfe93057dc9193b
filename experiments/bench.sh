#!/usr/bin/env bash
# experiments/bench.sh -- what `make bench` runs: this tool against PyTorch, like
# for like, in interleaved rounds; then the targets (randlora bench --targets) and
# the report.
#
#   R=build/randlora OUT=results/bench ROUNDS=3 PEFT_SRC=/path/to/peft \
#   OPENBLAS_DIR=/usr/lib/x86_64-linux-gnu/openblas-openmp bash experiments/bench.sh
#
# Each round runs every configuration once on each side, C and PyTorch taking
# turns (--lockstep, experiments/lockstep.h): a turn is one untimed step and
# TURN timed ones (default 5), STEPS timed steps a side (default 30), and which
# side starts alternates with the round. Both are thus timed on the same
# stretch of the machine, whose speed on this VM moves 10-20% between runs
# minutes apart. A one-thread pair runs both sides on one CPU (taskset; CPU
# (round-1) mod nproc, so that the rounds visit every CPU): the two vCPUs here
# have run at different speeds (1024^3 SGEMM 153-170 against 187-193 GFLOP/s
# within a minute), and a side's figure followed the CPU the scheduler gave it.
# The machine's rates (machine.csv) are measured at the start of every round,
# the 1-thread ones on that round's CPU. A side's time is the median over
# rounds; a target's figure the geometric mean of its per-round figures, with
# their 95% interval (bench_targets.c). The stack's thread scaling comes from a pair of its own:
# the stack at 1 thread (pinned as above) taking turns with the stack at 2
# (compare_scaling.csv), and RandLora's step over LoRA's from RandLora's layer
# taking turns with LoRA's (compare_ratio.csv), so that the machine's drift
# between two configurations of a round cancels in their ratio as it does in
# C against PyTorch. Before each round the script
# waits (at most QUIET_WAIT seconds) until other processes use less than 5% of
# the machine; every row records the CPU share other processes (not the
# partner) took while it was timed (foreign_cpu), and a pair disturbed beyond
# 5% is measured again after waiting (RETRIES tries; the last is kept and its
# share shows).
#
# Configurations (768x768, r = 32 for the layer and stack):
#   layer  lora, vera, randlora x tokens 4096, 1024 x dx no/yes x threads 1, 2
#   stack  4 layers, 4096 tokens, every method, threads 1, 2 (per-layer split in C)
#   scale  the same stack, C at 1 thread taking turns with C at 2
#   ratio  C's RandLora layer taking turns with C's LoRA layer, 4096 tokens,
#          dx no/yes x threads 1, 2
#   vit    whole ViT step, batch 128, each method at PEFT's default r (lora 8,
#          vera 256, randlora 32), threads 1, 2; each run in its own process, so
#          peak RSS (VmHWM) is per method
# PyTorch: /usr/bin/python3 experiments/reference/peft_bench.py, with PEFT's own
# layers when PEFT_SRC is set (impl=peft), else the transcription
# (experiments/reference/peft_step.py, impl=transcription: lora and randlora
# layers only). It runs on the same OpenBLAS library file (LD_LIBRARY_PATH=
# OPENBLAS_DIR) with the core the C tool chose (OPENBLAS_CORETYPE), and with
# glibc's malloc keeping freed memory (see py_env below).
set -euo pipefail
R=${R:-build/randlora}
OUT=${OUT:-results/bench}
ROUNDS=${ROUNDS:-3}
PEFT_SRC=${PEFT_SRC:-}
OPENBLAS_DIR=${OPENBLAS_DIR:-}
QUIET_WAIT=${QUIET_WAIT:-600}   # seconds to wait for a quiet machine before each round
RETRIES=${RETRIES:-3}           # tries of a disturbed pair
PY=/usr/bin/python3
REF=experiments/reference/peft_bench.py
mkdir -p "$OUT"
started=$(date -u +%Y%m%d-%H%M) # names this run's copy in $OUT/runs/
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- the machine: core, SGEMM rate, FMA peak (on a quiet machine: wait_quiet below) ----
# Measured before the rounds (the core PyTorch is given) and again at the start
# of every round: machine.csv keeps each round's rows (round column), and the
# SGEMM target takes the geometric mean of the rounds' fractions per thread
# count, as every other target takes its rounds'.
measure_machine() { # [ROUND]: the 1-thread figures on the CPU that round's 1-thread pairs take (pin)
    { $(pin 1 "${1:-1}") "$R" bench --machine --csv --threads 1; "$R" bench --machine --csv --threads 2 | tail -n 1; } \
        > "$tmp/machine_now.csv"
}
measure_machine_quietly() { wait_quiet; measure_machine; cat "$tmp/machine_now.csv"; }

# ---- is PyTorch there? ----
have_torch=0
if [ -x "$PY" ] && "$PY" -c "import torch" 2>/dev/null; then have_torch=1
else echo "bench.sh: python3-torch not installed: the PyTorch side is skipped"; fi
[ -n "$PEFT_SRC" ] || echo "bench.sh: no PEFT_SRC: PyTorch runs the transcription (not PEFT) for lora and randlora layers only"

# ---- the grid: kind method tokens dx threads r ----
# SMOKE=1: the same grid on tiny inputs and 2 timed steps (checks the plumbing; no target means anything)
T1=4096 T2=1024 BATCH=128 NREPS=${STEPS:-30} TURN=${TURN:-5}
if [ "${SMOKE:-0}" = 1 ]; then T1=256 T2=64 BATCH=8 NREPS=2 TURN=1; fi
REPS="--min-reps $NREPS --max-reps $NREPS --seconds 0.001 --lockstep-calls $TURN --lockstep-warmup 1"
# A configuration's 1- and 2-thread runs are adjacent, so that a thread
# scaling (stack 1T/2T) compares runs minutes apart at most, not half a round.
configs=()
for m in randlora lora vera; do
    for tok in $T1 $T2; do
        for dx in 0 1; do for th in 1 2; do configs+=("layer $m $tok $dx $th 32"); done; done
    done
done
for dx in 0 1; do for th in 1 2; do configs+=("ratio randlora $T1 $dx $th 32"); done; done
for m in randlora lora vera; do for th in 1 2; do configs+=("stack $m $T1 1 $th 32"); done; configs+=("scale $m $T1 1 - 32"); done
for th in 1 2; do configs+=("vit randlora $BATCH 1 $th 32" "vit lora $BATCH 1 $th 8" "vit vera $BATCH 1 $th 256"); done

c_cmd() { # kind method tokens dx threads r
    case $1 in
    layer) echo "$R bench --csv --method $2 --r $6 --out 768 --in 768 --tokens $3 --threads $5 $REPS $([ "$4" = 1 ] && echo --dx)" ;;
    stack|scale) echo "$R bench --csv --method $2 --r $6 --out 768 --in 768 --tokens $3 --threads $5 --layers 4 $REPS" ;;
    vit) echo "$R bench --csv --model vit --method $2 --r $6 --tokens $3 --threads $5 $REPS" ;;
    esac
}
py_cmd() {
    local src=""
    [ -n "$PEFT_SRC" ] && src="--peft-src $PEFT_SRC"
    if [ -z "$PEFT_SRC" ] && { [ "$1" != layer ] || [ "$2" = vera ]; }; then return 1; fi
    echo "$PY $REF $src --csv --kind $1 --method $2 --r $6 --out 768 --in 768 --tokens $3 --threads $5 --layers 4 $REPS $([ "$4" = 1 ] && [ "$1" = layer ] && echo --dx)"
}

# ---- two processes taking turns ----
mkfifo "$tmp/turn_ab" "$tmp/turn_ba"
have_taskset=0
command -v taskset >/dev/null && have_taskset=1 || echo "bench.sh: no taskset: one-thread pairs are not pinned to one CPU"
# pin THREADS ROUND: the prefix that puts a one-thread side on the round's CPU
pin() { if [ "$1" = 1 ] && [ "$have_taskset" = 1 ]; then echo "taskset -c $(( ($2 - 1) % $(nproc) ))"; fi; }
# lockstep ROUND A_OUT B_OUT A_CMD B_CMD (each command a string; run by word splitting):
# both in turns, A first in odd rounds and B first in even ones; their stdout to
# the files. A side that fails stops the other; exit 1.
lockstep() {
    local a_out=$2 b_out=$3 a_cmd=$4 b_cmd=$5 pa rb=0 ra=0
    if (($1 % 2 == 0)); then a_out=$3 b_out=$2 a_cmd=$5 b_cmd=$4; fi # B first
    $a_cmd --lockstep first --lockstep-in "$tmp/turn_ba" --lockstep-out "$tmp/turn_ab" > "$a_out" 2> "$tmp/a.err" &
    pa=$!
    $b_cmd --lockstep second --lockstep-in "$tmp/turn_ab" --lockstep-out "$tmp/turn_ba" > "$b_out" 2> "$tmp/b.err" || rb=$?
    if [ "$rb" != 0 ]; then kill "$pa" 2>/dev/null || true; fi
    wait "$pa" || ra=$?
    if [ "$ra" != 0 ] || [ "$rb" != 0 ]; then
        echo "bench.sh: a lockstep pair failed (rc $ra / $rb):"; echo "  $a_cmd"; echo "  $b_cmd"
        cat "$tmp/a.err" "$tmp/b.err"
        exit 1
    fi
}

# the foreign_cpu of a side's --csv output in FILE (header, row), found by name
foreign_of() {
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "foreign_cpu") c = i } NR == 2 { print (c ? $c : 1) }' "$1"
}

# other processes' share of the machine over 2 s (0..1)
foreign_now() {
    local a b
    a=($(head -n 1 /proc/stat)); sleep 2; b=($(head -n 1 /proc/stat))
    local busy=$(( (b[1]+b[2]+b[3]+b[6]+b[7]+b[8]) - (a[1]+a[2]+a[3]+a[6]+a[7]+a[8]) ))
    awk -v j="$busy" -v hz="$(getconf CLK_TCK)" -v n="$(nproc)" 'BEGIN { printf "%.3f", j / hz / (2 * n) }'
}
wait_quiet() {
    local waited=0 f
    while :; do
        f=$(foreign_now)
        if awk -v f="$f" 'BEGIN { exit !(f < 0.05) }'; then return; fi
        if [ "$waited" -ge "$QUIET_WAIT" ]; then
            echo "bench.sh: the machine is still busy (others use $f of it) after ${waited}s: measuring anyway (see foreign_cpu)"
            return
        fi
        echo "bench.sh: others use $f of the machine: waiting"
        sleep 20; waited=$((waited + 22))
    done
}

measure_machine_quietly
core=$(awk -F, 'NR == 2 { print $2 }' "$tmp/machine_now.csv")
echo "round,$(head -n 1 "$tmp/machine_now.csv")" > "$tmp/machine.csv"
if grep -q "below it" "$tmp/machine_now.csv"; then
    echo "bench.sh: WARNING: OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE holds OpenBLAS below this CPU's kernels; every figure"
    echo "bench.sh: WARNING: of this run (C and PyTorch) is taken on them. Unset it to measure on the kernels randlora picks."
fi
# glibc returns PyTorch's freed tensors (above its mmap threshold) to the OS, so
# each step pays page faults to map them again -- costly in a VM (a LoRA step
# at 4096 tokens with dx: 170-300 ms against 71-75 ms measured with these
# settings). The C tool allocates nothing in a step; PyTorch is run with
# glibc told to keep and reuse its memory, its best case on this machine.
py_env=(env "OPENBLAS_CORETYPE=$core" MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296
        MALLOC_TOP_PAD_=268435456)
[ -n "$OPENBLAS_DIR" ] && [ -d "$OPENBLAS_DIR" ] && py_env+=("LD_LIBRARY_PATH=$OPENBLAS_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")

c_head=""; py_head=""
: > "$tmp/c.csv"; : > "$tmp/py.csv"; : > "$tmp/scale.csv"; : > "$tmp/ratio.csv"
# One configuration, both sides taking turns; a pair during which other
# processes took more than 5% of the machine (foreign_cpu) is measured again
# after waiting for quiet, up to RETRIES times (the last try is kept either way).
run_pair() { # round kind method tokens dx threads r
    local round=$1 try cr pr cf pf cmd c_run py_run
    shift
    for ((try = 1; try <= RETRIES; try++)); do
        cr="" pr="" cf=0 pf=0
        if [ "$1" = scale ] || [ "$1" = ratio ]; then # C against C
            local one two
            if [ "$1" = scale ]; then # the stack at 1 thread against itself at 2
                one="$(pin 1 "$round") $(c_cmd stack "$2" "$3" "$4" 1 "$6")"
                two="$(c_cmd stack "$2" "$3" "$4" 2 "$6")"
            else # RandLora's layer against LoRA's, same tokens, dx and threads
                one="$(pin "$5" "$round") $(c_cmd layer randlora "$3" "$4" "$5" "$6")"
                two="$(pin "$5" "$round") $(c_cmd layer lora "$3" "$4" "$5" "$6")"
            fi
            lockstep "$round" "$tmp/c1.out" "$tmp/c2.out" "$one" "$two"
            [ -n "$c_head" ] || c_head="round,kind,$(head -n 1 "$tmp/c1.out")"
            cr="$round,$1,$(tail -n 1 "$tmp/c1.out")"
            pr="$round,$1,$(tail -n 1 "$tmp/c2.out")"
            cf=$(foreign_of "$tmp/c1.out"); pf=$(foreign_of "$tmp/c2.out")
        else
            c_run="$(pin "$5" "$round") $(c_cmd "$@")"
            if [ "$have_torch" = 1 ] && cmd=$(py_cmd "$@"); then
                py_run="$(pin "$5" "$round") ${py_env[*]} $cmd"
                lockstep "$round" "$tmp/c.out" "$tmp/py.out" "$c_run" "$py_run"
                if [ "$(head -n 1 "$tmp/py.out" | cut -c1-5)" != "impl," ]; then cat "$tmp/py.out"; exit 1; fi
                [ -n "$py_head" ] || py_head="round,$(head -n 1 "$tmp/py.out")"
                pr="$round,$(tail -n 1 "$tmp/py.out")"
                pf=$(foreign_of "$tmp/py.out")
            else # no PyTorch for this one: the C side alone
                $c_run > "$tmp/c.out"
            fi
            [ -n "$c_head" ] || c_head="round,kind,$(head -n 1 "$tmp/c.out")"
            cr="$round,$1,$(tail -n 1 "$tmp/c.out")"
            cf=$(foreign_of "$tmp/c.out")
        fi
        if awk -v a="$cf" -v b="$pf" 'BEGIN { exit !(a <= 0.05 && b <= 0.05) }' || [ "$try" = "$RETRIES" ]; then break; fi
        echo "  disturbed (others took $cf / $pf of the machine): $* again"
        wait_quiet
    done
    if [ "$1" = scale ] || [ "$1" = ratio ]; then
        printf '%s\n%s\n' "$cr" "$pr" >> "$tmp/$1.csv"
        echo "  $cr" | cut -c1-160; echo "  $pr" | cut -c1-160
        return
    fi
    echo "$cr" >> "$tmp/c.csv"
    echo "  c $cr" | cut -c1-160
    if [ -n "$pr" ]; then echo "$pr" >> "$tmp/py.csv"; echo "  py $pr" | cut -c1-160; fi
}

for ((round = 1; round <= ROUNDS; round++)); do
    wait_quiet
    echo "bench.sh: round $round of $ROUNDS ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
    measure_machine "$round"
    tail -n +2 "$tmp/machine_now.csv" | sed "s/^/$round,/" | tee -a "$tmp/machine.csv" | cut -c1-100 | sed 's/^/  machine /'
    for cfg in "${configs[@]}"; do run_pair "$round" $cfg; done
done
{ echo "$c_head"; cat "$tmp/c.csv"; } > "$tmp/compare_c.csv"
mv "$tmp/machine.csv" "$OUT/machine.csv.tmp" && mv "$OUT/machine.csv.tmp" "$OUT/machine.csv"
mv "$tmp/compare_c.csv" "$OUT/compare_c.csv.tmp" && mv "$OUT/compare_c.csv.tmp" "$OUT/compare_c.csv"
{ echo "$c_head"; cat "$tmp/scale.csv"; } > "$OUT/compare_scaling.csv.tmp" && mv "$OUT/compare_scaling.csv.tmp" "$OUT/compare_scaling.csv"
{ echo "$c_head"; cat "$tmp/ratio.csv"; } > "$OUT/compare_ratio.csv.tmp" && mv "$OUT/compare_ratio.csv.tmp" "$OUT/compare_ratio.csv"
if [ -n "$py_head" ]; then
    { echo "$py_head"; cat "$tmp/py.csv"; } > "$OUT/compare_pytorch.csv.tmp" && mv "$OUT/compare_pytorch.csv.tmp" "$OUT/compare_pytorch.csv"
else
    rm -f "$OUT/compare_pytorch.csv"
fi

# ---- C-only figures: sparse kernels, merges, PEFT's route on the C side ----
STEP="--r 32 --out 768 --in 768 --tokens 4096"
{ echo "target,$("$R" bench --csv --method lora --r 1 --out 16 --in 16 --tokens 1 --min-reps 1 --max-reps 1 --seconds 0.001 | head -n 1)"
  row() { t=$1; shift; printf '%s,' "$t"; "$R" bench --csv "$@" | tail -n 1; }
  row step_t1_randlora_factorised --method randlora --path factorised $STEP --threads 1
  row step_t1_randlora_factorised_dx --method randlora --path factorised $STEP --threads 1 --dx
  row sparse_dense --method randlora --bases dense --r 32 --out 1024 --in 1024 --tokens 256 --threads 1
  row sparse_sparse --method randlora --bases sparse --r 32 --out 1024 --in 1024 --tokens 256 --threads 1
  row sparse_very_sparse --method randlora --bases very_sparse --r 32 --out 1024 --in 1024 --tokens 256 --threads 1
  row merge_dense --merge --method randlora --bases dense --r 32 --out 4096 --in 4096 --threads 1 --min-reps 3 --max-reps 3 --seconds 0.1
  row merge_sparse --merge --method randlora --bases sparse --r 32 --out 4096 --in 4096 --threads 1 --min-reps 3 --max-reps 3 --seconds 0.1
  row merge_very_sparse --merge --method randlora --bases very_sparse --r 32 --out 4096 --in 4096 --threads 1 --min-reps 3 --max-reps 3 --seconds 0.1
} > "$OUT/bench.csv.tmp" && mv "$OUT/bench.csv.tmp" "$OUT/bench.csv"
rm -f "$OUT/pytorch.csv" # superseded by compare_pytorch.csv

# ---- keep this run beside the earlier ones ----
# $OUT/runs/<UTC start>-<source>/ keeps its rounds; `bench --targets` analyses
# every kept run again and puts their verdicts side by side (targets_runs.csv):
# a run's intervals speak for its own machine only.
src=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "source") c = i } NR == 2 { print (c ? $c : "unknown") }' \
      "$OUT/machine.csv")
run_dir="$OUT/runs/$started-$src"
mkdir -p "$OUT/runs" && rm -rf "$run_dir.tmp" && mkdir "$run_dir.tmp"
for f in machine compare_c compare_pytorch compare_scaling compare_ratio bench; do
    [ -f "$OUT/$f.csv" ] && cp "$OUT/$f.csv" "$run_dir.tmp/"
done
rm -rf "$run_dir" && mv "$run_dir.tmp" "$run_dir"

"$R" bench --targets "$OUT"
