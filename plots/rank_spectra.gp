# Singular-value spectra of ΔW per method, 768x768, r = 32 (perturbed and trained states).
load "plots/rank_common.gp"
f = dir."/spectrum.csv"
set terminal pngcairo size 1200,500
set output "plots/out/rank_spectra.png"
set multiplot layout 1,2 title "Singular values of ΔW, 768x768, r = 32 (σ_i / σ_max; dotted: float32 tolerance max(m,n)·FLT\\_EPSILON)"
set logscale y
set format y "10^{%L}"
set xlabel "index i"
set ylabel "σ_i / σ_max"
set yrange [1e-10:2]
tol = 768 * 1.1920929e-07
sel(m, b, s) = is(m, b) && $3 == 768 && $4 == 768 && $5 == 32 && strcol(6) eq s
do for [st in "perturbed trained"] {
  set title st
  plot f using (sel("lora","none",st) ? $7 : 1/0):($9 > 0 ? $9 : 1e-10) with lines lw 2 title "LoRA", \
       f using (sel("vera","none",st) ? $7 : 1/0):($9 > 0 ? $9 : 1e-10) with lines lw 2 title "VeRA", \
       f using (sel("randlora","dense",st) ? $7 : 1/0):($9 > 0 ? $9 : 1e-10) with lines lw 2 title "RandLora dense", \
       f using (sel("randlora","sparse",st) ? $7 : 1/0):($9 > 0 ? $9 : 1e-10) with lines lw 2 title "RandLora sparse", \
       f using (sel("randlora","very_sparse",st) ? $7 : 1/0):($9 > 0 ? $9 : 1e-10) with lines lw 2 title "RandLora very\\_sparse", \
       tol with lines dt 3 lc rgb "black" notitle
}
unset multiplot
