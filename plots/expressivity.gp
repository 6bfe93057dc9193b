# Relative error of fitting a target update vs trainable parameters, per
# spectrum (sweep expressivity, summary.csv: mean over seeds, 95% t-interval,
# best of three learning rates per configuration).
# columns: 1 spectrum 2 method 3 bases 4 r 5 params 6 best_lr 7 seeds
#          8 rel_error_mean 9 rel_error_ci95 10 lora_optimum
set datafile separator ","
set termoption noenhanced
set terminal pngcairo noenhanced size 1500,500
set output "plots/out/expressivity.png"
f = "results/expressivity/summary.csv"
set multiplot layout 1,3 title "Fitting a required update of known spectrum (128x128): ||dW - dW*||_F / ||dW*||_F"
set logscale x
set xlabel "trainable parameters"
set ylabel "relative error"
set yrange [0:1.05]
set grid
set key bottom left font ",8"
sel(s, m, b) = strcol(1) eq s && strcol(2) eq m && strcol(3) eq b
do for [s in "flat power rank8"] {
    set title s
    plot f using (sel(s,"lora","-") ? $5 : 1/0):8:9 with yerrorlines lw 2 title "LoRA", \
         f using (sel(s,"lora","-") ? $5 : 1/0):10 with lines dt 2 lc rgb "gray40" title "best rank-r (Eckart-Young)", \
         f using (sel(s,"randlora","dense") ? $5 : 1/0):8:9 with yerrorlines lw 2 title "RandLora dense", \
         f using (sel(s,"randlora","sparse") ? $5 : 1/0):8:9 with yerrorlines title "RandLora sparse", \
         f using (sel(s,"randlora","very_sparse") ? $5 : 1/0):8:9 with yerrorlines title "RandLora very_sparse", \
         f using (sel(s,"vera","-") ? $5 : 1/0):8:9 with yerrorlines title "VeRA", \
         f using (sel(s,"full","-") ? $5 : 1/0):8:9 with points pt 7 ps 1.5 title "full"
}
unset multiplot
