# The figure the paper is known for, at CPU scale: test accuracy of the
# pretrained ViT adapted to each target task vs trainable parameters (log x),
# mean and 95% interval over seeds, full fine-tuning as a dashed line
# (sweep vit, summary.csv: 1 task 2 method 3 bases 4 r 5 params 6 lr 7 seeds
# 8 test_acc_mean 9 test_acc_ci95 10 train_acc_mean 11 gap_mean 12 gap_ci95).
set datafile separator ","
set terminal pngcairo noenhanced size 1400,900
set output "plots/out/vit_accuracy.png"
f = "results/vit/summary.csv"
set multiplot layout 2,2 title "Pretrained ViT (dim 64, 4 blocks) adapted to shifted tasks: accuracy vs trainable parameters (q,k,v,o,fc1,fc2)"
set logscale x
set xlabel "trainable parameters (adapters + head)"
set ylabel "test accuracy"
set grid
set key bottom right font ",8"
sel(t, m, b) = strcol(1) eq t && strcol(2) eq m && strcol(3) eq b
do for [t in "fmnist59 digits rotated permuted"] {
    set title t
    undefine F_*
    stats f using (sel(t, "full", "-") ? $8 : 1/0) name "F" nooutput
    if (exists("F_records") && F_records > 0) {
        set arrow 1 from graph 0, first F_max to graph 1, first F_max nohead dt 2 lw 2 lc rgb "black"
        set label 1 sprintf("full fine-tuning %.3f", F_max) at graph 0.02, first F_max offset 0,0.7 font ",8"
        plot f using (sel(t,"lora","-") ? $5 : 1/0):8:9 with yerrorlines lw 2 title "LoRA", \
             f using (sel(t,"randlora","dense") ? $5 : 1/0):8:9 with yerrorlines lw 2 title "RandLora dense", \
             f using (sel(t,"randlora","sparse") ? $5 : 1/0):8:9 with yerrorbars pt 5 ps 1.2 title "RandLora sparse", \
             f using (sel(t,"randlora","very_sparse") ? $5 : 1/0):8:9 with yerrorbars pt 9 ps 1.2 title "RandLora very_sparse", \
             f using (sel(t,"vera","-") ? $5 : 1/0):8:9 with yerrorbars pt 7 ps 1.2 title "VeRA"
    } else {
        unset arrow 1
        unset label 1
        set label 2 "not run (the quick run adapts to digits only)" at graph 0.2, graph 0.5
        set xrange [1e3:1e5]
        set yrange [0:1]
        plot NaN notitle
        unset label 2
        set xrange [*:*]
        set yrange [*:*]
    }
}
unset multiplot
