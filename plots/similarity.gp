# Linear CKA of each adapted model's hidden layers with the fully fine-tuned
# model's, on the task-B test set (sweep similarity, cka.csv:
# task,method,bases,r,layer,cka).
set datafile separator ","
set terminal pngcairo noenhanced size 1500,500
set output "plots/out/similarity.png"
f = "results/similarity/cka.csv"
set multiplot layout 1,3 title "Similarity to full fine-tuning (linear CKA, seed 0)"
set xlabel "hidden layer"
set ylabel "CKA with the fully fine-tuned model"
set xrange [0.8:2.2]
set xtics 1
set yrange [*:1]
set grid
set key bottom left font ",8"
sel(t, m, b, r) = strcol(1) eq t && strcol(2) eq m && strcol(3) eq b && $4 == r
do for [t in "classes permuted teacher"] {
    set title t
    plot f using (sel(t,"lora","-",4) ? $5 : 1/0):6 with linespoints title "LoRA r=4", \
         f using (sel(t,"lora","-",64) ? $5 : 1/0):6 with linespoints title "LoRA r=64", \
         f using (sel(t,"randlora","dense",16) ? $5 : 1/0):6 with linespoints lw 2 title "RandLora r=16", \
         f using (sel(t,"randlora","dense",4) ? $5 : 1/0):6 with linespoints lw 2 title "RandLora r=4", \
         f using (sel(t,"randlora","sparse",16) ? $5 : 1/0):6 with linespoints title "RandLora sparse r=16", \
         f using (sel(t,"vera","-",1024) ? $5 : 1/0):6 with linespoints title "VeRA r=1024"
}
unset multiplot
