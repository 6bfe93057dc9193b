# Training loss on task B (seed 0) for a few configurations per method
# (sweep finetune, curves.csv: task,method,bases,r,seed,step,loss).
set datafile separator ","
set terminal pngcairo noenhanced size 1500,500
set output "plots/out/finetune_loss.png"
f = "results/finetune/curves.csv"
set multiplot layout 1,3 title "Training loss on task B (seed 0)"
set xlabel "step"
set ylabel "cross-entropy"
set logscale y
set grid
set key top right font ",8"
sel(t, m, b, r) = strcol(1) eq t && strcol(2) eq m && strcol(3) eq b && $4 == r && $5 == 0
do for [t in "classes permuted teacher"] {
    set title t
    plot f using (sel(t,"full","-",0) ? $6 : 1/0):7 with lines lw 2 title "full", \
         f using (sel(t,"lora","-",4) ? $6 : 1/0):7 with lines title "LoRA r=4", \
         f using (sel(t,"lora","-",64) ? $6 : 1/0):7 with lines title "LoRA r=64", \
         f using (sel(t,"randlora","dense",16) ? $6 : 1/0):7 with lines title "RandLora r=16", \
         f using (sel(t,"randlora","dense",4) ? $6 : 1/0):7 with lines title "RandLora r=4", \
         f using (sel(t,"vera","-",1024) ? $6 : 1/0):7 with lines title "VeRA r=1024"
}
unset multiplot
