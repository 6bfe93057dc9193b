# Factorised vs materialised RandLora step over the token count (r = 32):
# where building delta W once per step starts to pay off.
load "plots/cost_common.gp"
f = "results/cost/crossover.csv"
set terminal pngcairo noenhanced size 1200,500
set output "plots/out/cost_crossover.png"
set multiplot layout 1,2 title "RandLora dense r = 32: time per token of a training step (1 thread)"
set xlabel "tokens per step"
set ylabel "time per token (us)"
set logscale x 2
do for [d in "768 1024"] {
    set title sprintf("%sx%s", d, d)
    sel(m, b, p) = is(m, b) && strcol(3) eq p && $6 == int(d) ? $8 : 1/0
    plot f using (sel("randlora","dense","factorised")):(1000*$12/$8) with linespoints lw 2 title "factorised", \
         f using (sel("randlora","dense","materialised")):(1000*$12/$8) with linespoints lw 2 title "materialised", \
         f using (sel("randlora","dense","auto")):(1000*$12/$8) with points pt 6 ps 2 title "auto (chosen)", \
         f using (sel("lora","-","-")):(1000*$12/$8) with linespoints dt 2 title "LoRA r = 32"
}
unset multiplot
