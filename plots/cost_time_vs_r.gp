# Time per training step vs r, 768x768, 1024 tokens, 1 thread (sweep cost, time_vs_r).
load "plots/cost_common.gp"
f = "results/cost/time_vs_r.csv"
set terminal pngcairo noenhanced size 900,600
set output "plots/out/cost_time_vs_r.png"
set title "Training step (fwd + bwd + AdamW), 768x768, 1024 tokens, 1 thread"
set xlabel "r"
set ylabel "time per step (ms), median with IQR"
set logscale x 2
set logscale y
sel(m, b, p) = is(m, b) && strcol(3) eq p && $8 == 1024 && $10 == 1
stats f using (strcol(1) eq "full" && $8 == 1024 && $10 == 1 ? $12 : 1/0) name "FULL" nooutput
set arrow from graph 0, first FULL_max to graph 1, first FULL_max nohead dt 2 lw 2 lc rgb "black"
set label sprintf("full fine-tuning %.1f ms", FULL_max) at graph 0.6, first FULL_max*1.08 font ",9"
plot f using (sel("lora","-","-") ? $5 : 1/0):12:13:14 with yerrorlines lw 2 title "LoRA", \
     f using (sel("vera","-","-") ? $5 : 1/0):12:13:14 with yerrorlines lw 2 title "VeRA", \
     f using (sel("randlora","dense","auto") ? $5 : 1/0):12:13:14 with yerrorlines lw 3 title "RandLora dense (auto path)", \
     f using (sel("randlora","dense","factorised") ? $5 : 1/0):12:13:14 with yerrorlines dt 2 title "RandLora dense factorised (PEFT's way)", \
     f using (sel("randlora","dense","materialised") ? $5 : 1/0):12:13:14 with yerrorlines dt 3 title "RandLora dense materialised", \
     f using (sel("randlora","sparse","auto") ? $5 : 1/0):12:13:14 with yerrorlines title "RandLora sparse (auto)", \
     f using (sel("randlora","very_sparse","auto") ? $5 : 1/0):12:13:14 with yerrorlines title "RandLora very_sparse (auto)"
