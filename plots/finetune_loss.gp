# Training loss on task B (seed 0) of every final configuration of the dense
# methods (sweep finetune, curves.csv: task,method,bases,r,seed,step,loss).
set datafile separator ","
set terminal pngcairo noenhanced size 1200,500
set output "plots/out/finetune_loss.png"
f = "results/finetune/curves.csv"
set multiplot layout 1,2 title "Training loss on task B (seed 0, at each configuration's chosen learning rate)"
set xlabel "step"
set ylabel "cross-entropy"
set logscale y
set grid
set key top right font ",8"
sel(t, m) = strcol(1) eq t && strcol(2) eq m && strcol(3) ne "sparse" && strcol(3) ne "very_sparse" && $5 == 0
do for [t in "classes permuted"] {
    set title t
    plot f using (sel(t,"full") ? $6 : 1/0):7 with lines lw 2 lc rgb "black" title "full", \
         f using (sel(t,"lora") ? $6 : 1/0):7 with lines lc rgb "#1f77b4" title "LoRA (every r)", \
         f using (sel(t,"randlora") ? $6 : 1/0):7 with lines lc rgb "#d62728" title "RandLora dense (every r)", \
         f using (sel(t,"vera") ? $6 : 1/0):7 with lines lc rgb "#2ca02c" title "VeRA"
}
unset multiplot
