# Test accuracy on task B vs trainable parameters (adapters + head), mean and
# 95% t-interval over seeds (sweep finetune, summary.csv); full fine-tuning as
# a dashed line. columns: 1 task 2 method 3 bases 4 r 5 params 6 seeds
# 7 test_acc_mean 8 test_acc_ci95 9 train_acc_mean 10 gap_mean 11 step_ms_mean
set datafile separator ","
set terminal pngcairo noenhanced size 1500,500
set output "plots/out/finetune_accuracy.png"
f = "results/finetune/summary.csv"
set multiplot layout 1,3 title "Adapting a pretrained MLP (784-256-256) to task B: test accuracy vs trainable parameters"
set logscale x
set xlabel "trainable parameters (adapters + head)"
set ylabel "test accuracy"
set grid
set key bottom right font ",8"
sel(t, m, b) = strcol(1) eq t && strcol(2) eq m && strcol(3) eq b
do for [t in "classes permuted teacher"] {
    set title t
    stats f using (sel(t, "full", "-") ? $7 : 1/0) name "F" nooutput
    set arrow 1 from graph 0, first F_max to graph 1, first F_max nohead dt 2 lw 2 lc rgb "black"
    set label 1 sprintf("full fine-tuning %.3f", F_max) at graph 0.02, first F_max offset 0,0.7 font ",8"
    plot f using (sel(t,"lora","-") ? $5 : 1/0):7:8 with yerrorlines lw 2 title "LoRA", \
         f using (sel(t,"randlora","dense") ? $5 : 1/0):7:8 with yerrorlines lw 2 title "RandLora dense", \
         f using (sel(t,"randlora","sparse") ? $5 : 1/0):7:8 with yerrorbars pt 5 ps 1.2 title "RandLora sparse", \
         f using (sel(t,"randlora","very_sparse") ? $5 : 1/0):7:8 with yerrorbars pt 9 ps 1.2 title "RandLora very_sparse", \
         f using (sel(t,"vera","-") ? $5 : 1/0):7:8 with yerrorlines title "VeRA"
}
unset multiplot
