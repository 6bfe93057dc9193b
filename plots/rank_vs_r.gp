# Numerical rank / min_dim vs r, per layer shape (perturbed state; dashed: RandLora with equal gammas).
load "plots/rank_common.gp"
f = dir."/rank.csv"
set terminal pngcairo size 1500,500
set output "plots/out/rank_vs_r.png"
set multiplot layout 1,3 title "Numerical rank of ΔW / min(out, in) vs r (perturbed parameters; float32 tolerance)"
set logscale x 2
set xlabel "r"
set ylabel "rank / min\\_dim"
set yrange [0:1.05]
set key center right
sel(m, b, s, o, i) = is(m, b) && strcol(9) eq s && $3 == o && $4 == i
do for [k = 1:3] {
  o = int(word("256 768 768", k)); i = int(word("256 768 3072", k))
  set title sprintf("%dx%d", o, i)
  plot f using (sel("randlora","dense","perturbed",o,i) ? $6 : 1/0):($11/$5) with linespoints lw 2 title "RandLora dense", \
       f using (sel("randlora","sparse","perturbed",o,i) ? $6 : 1/0):($11/$5) with linespoints lw 2 title "RandLora sparse", \
       f using (sel("randlora","very_sparse","perturbed",o,i) ? $6 : 1/0):($11/$5) with linespoints lw 2 title "RandLora very\\_sparse", \
       f using (sel("randlora","dense","equal_gamma",o,i) ? $6 : 1/0):($11/$5) with linespoints dt 2 title "RandLora, equal gammas", \
       f using (sel("lora","none","perturbed",o,i) ? $6 : 1/0):($11/$5) with linespoints lw 2 title "LoRA", \
       f using (sel("vera","none","perturbed",o,i) ? $6 : 1/0):($11/$5) with linespoints lw 2 dt 4 title "VeRA"
}
unset multiplot
