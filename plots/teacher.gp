# Teacher-student: the relative error ||dW - dW*||_F / ||dW*||_F each method
# reaches (mean and 95% interval over seeds) against its trainable parameters,
# with LoRA's Eckart-Young floor (the best any rank-r update can do); one
# panel per spectrum of dW* (sweep teacher, summary.csv: 1 spectrum 2 method
# 3 bases 4 r 5 params 6 lr 7 seeds 8 rel_error_mean 9 rel_error_ci95
# 10 eckart_young 11 above_floor).
set datafile separator ","
set terminal pngcairo noenhanced size 1500,500
set output "plots/out/teacher.png"
f = "results/teacher/summary.csv"
set multiplot layout 1,3 title "Learning a known update dW* (256x128) through data: error reached at matched budgets"
set logscale x
set xlabel "trainable parameters"
set ylabel "||dW - dW*||_F / ||dW*||_F"
set yrange [0:1.05]
set grid
set key bottom left font ",8"
sel(s, m) = strcol(1) eq s && strcol(2) eq m
do for [s in "flat power spiked"] {
    set title s
    plot f using (sel(s,"lora") ? $5 : 1/0):8:9 with yerrorlines lw 2 title "LoRA", \
         f using (sel(s,"lora") ? $5 : 1/0):10 with lines dt 2 lc rgb "#1f77b4" title "LoRA Eckart-Young floor", \
         f using (sel(s,"randlora") ? $5 : 1/0):8:9 with yerrorlines lw 2 title "RandLora", \
         f using (sel(s,"vera") ? $5 : 1/0):8:9 with yerrorbars pt 7 ps 1.2 title "VeRA", \
         f using (sel(s,"full") ? $5 : 1/0):8:9 with yerrorbars pt 5 ps 1.2 title "full"
}
unset multiplot
