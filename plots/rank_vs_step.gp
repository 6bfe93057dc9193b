# Numerical rank of ΔW along training (AdamW on the synthetic regression task), 768x768.
load "plots/rank_common.gp"
f = dir."/training.csv"
set terminal pngcairo size 900,550
set output "plots/out/rank_vs_step.png"
set title "Rank of ΔW during training, 768x768 (step 0 = PEFT init: ΔW = 0; step 1: equal gammas)"
set logscale x 2
set xlabel "training step + 1"
set ylabel "numerical rank"
set yrange [0:800]
set key bottom right
sel(m, b, r) = is(m, b) && $3 == 768 && $4 == 768 && $6 == r
plot f using (sel("randlora","dense",8) ? $7 + 1 : 1/0):9 with linespoints lw 2 title "RandLora dense r=8", \
     f using (sel("randlora","dense",32) ? $7 + 1 : 1/0):9 with linespoints lw 2 title "RandLora dense r=32", \
     f using (sel("randlora","sparse",32) ? $7 + 1 : 1/0):9 with linespoints lw 2 title "RandLora sparse r=32", \
     f using (sel("randlora","very_sparse",32) ? $7 + 1 : 1/0):9 with linespoints lw 2 title "RandLora very\\_sparse r=32", \
     f using (sel("lora","none",32) ? $7 + 1 : 1/0):9 with linespoints lw 2 title "LoRA r=32", \
     f using (sel("vera","none",32) ? $7 + 1 : 1/0):9 with linespoints lw 2 title "VeRA r=32"
