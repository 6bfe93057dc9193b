# Mean linear CKA over the hidden layers with the fully fine-tuned model of
# the same seed, mean and 95% interval over seeds, vs trainable parameters
# (sweep similarity, summary.csv: 1 task 2 method 3 bases 4 r 5 params 6 seeds
# 7 cka_mean 8 cka_ci95); the untouched pretrained model as a dashed line.
set datafile separator ","
set terminal pngcairo noenhanced size 1200,500
set output "plots/out/similarity.png"
f = "results/similarity/summary.csv"
set multiplot layout 1,2 title "Similarity of hidden representations to full fine-tuning (linear CKA, mean over seeds)"
set logscale x
set xlabel "trainable parameters (adapters + head)"
set ylabel "CKA with the fully fine-tuned model"
set grid
set key bottom right font ",8"
sel(t, m, b) = strcol(1) eq t && strcol(2) eq m && strcol(3) eq b
do for [t in "classes permuted"] {
    set title t
    stats f using (sel(t, "pretrained", "-") ? $7 : 1/0) name "P" nooutput
    set arrow 1 from graph 0, first P_max to graph 1, first P_max nohead dt 2 lw 2 lc rgb "gray"
    set label 1 sprintf("untouched pretrained model %.3f", P_max) at graph 0.02, first P_max offset 0,-0.7 font ",8"
    plot f using (sel(t,"lora","-") ? $5 : 1/0):7:8 with yerrorlines lw 2 title "LoRA", \
         f using (sel(t,"randlora","dense") ? $5 : 1/0):7:8 with yerrorlines lw 2 title "RandLora dense", \
         f using (sel(t,"randlora","sparse") ? $5 : 1/0):7:8 with yerrorbars pt 5 ps 1.2 title "RandLora sparse", \
         f using (sel(t,"randlora","very_sparse") ? $5 : 1/0):7:8 with yerrorbars pt 9 ps 1.2 title "RandLora very_sparse", \
         f using (sel(t,"vera","-") ? $5 : 1/0):7:8 with yerrorbars pt 7 ps 1.2 title "VeRA"
}
unset multiplot
