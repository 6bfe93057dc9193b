# Time per step vs layer size (out*in), log-log, r = 32, 1024 tokens, with the
# GSL least-squares slopes the sweep wrote to results/cost/slopes.gp.
load "plots/cost_common.gp"
f = "results/cost/time_vs_size.csv"
set terminal pngcairo noenhanced size 900,600
set output "plots/out/cost_time_vs_size.png"
set title "Training step vs layer size (r = 32, 1024 tokens, 1 thread); slope = d log t / d log(out*in)"
set xlabel "out x in (parameters of the base weight)"
set ylabel "time per step (ms)"
set logscale xy
set key bottom right
load "results/cost/slopes.gp"
sz(m, b) = is(m, b) && strcol(3) ne "factorised" && strcol(3) ne "materialised" ? $6*$7 : 1/0
plot f using (sz("full","-")):12 with linespoints lw 2 title "full", \
     f using (sz("lora","-")):12 with linespoints lw 2 title "LoRA", \
     f using (sz("vera","-")):12 with linespoints lw 2 title "VeRA", \
     f using (sz("randlora","dense")):12 with linespoints lw 3 title "RandLora dense", \
     f using (sz("randlora","sparse")):12 with linespoints title "RandLora sparse", \
     f using (sz("randlora","very_sparse")):12 with linespoints title "RandLora very_sparse"
