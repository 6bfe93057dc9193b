# How far each method moves the model (sweep finetune): left, the relative
# change ||dW||_F / ||W0||_F of each adapted layer against trainable
# parameters (movement.csv: 1 task 2 method 3 bases 4 r 5 seed 6 layer 7 d_out
# 8 d_in 9 rel_fro 10 rank 11 k90 12 effective_rank); right, the cumulative
# energy of the singular values of full fine-tuning's dW, seed 0
# (spectrum.csv: 1 task 2 method 3 bases 4 r 5 seed 6 layer 7 k 8 energy).
set datafile separator ","
set terminal pngcairo noenhanced size 1200,500
set output "plots/out/finetune_movement.png"
m = "results/finetune/movement.csv"
s = "results/finetune/spectrum.csv"
set multiplot layout 1,2 title "How far each method moves the pretrained MLP (task classes)"
set title "relative change of each adapted layer, every seed"
set ylabel "||dW||_F / ||W0||_F"
set xlabel "rank r of the method (full fine-tuning at r = 0.5)"
set logscale xy
set grid
set key top right font ",8"
sel(t, me, l) = strcol(1) eq t && strcol(2) eq me && strcol(6) eq l
plot m using (sel("classes","full","mlp.fc1") ? 0.5 : 1/0):9 with points pt 7 lc rgb "black" title "full fc1", \
     m using (sel("classes","lora","mlp.fc1") ? $4 : 1/0):9 with points pt 5 lc rgb "#1f77b4" title "LoRA fc1", \
     m using (sel("classes","randlora","mlp.fc1") && strcol(3) eq "dense" ? $4 : 1/0):9 with points pt 9 lc rgb "#d62728" title "RandLora fc1", \
     m using (sel("classes","vera","mlp.fc1") ? $4 : 1/0):9 with points pt 11 lc rgb "#2ca02c" title "VeRA fc1", \
     m using (sel("classes","randlora","mlp.fc2") && strcol(3) eq "dense" ? $4 : 1/0):9 with points pt 8 lc rgb "#ff9896" title "RandLora fc2", \
     m using (sel("classes","lora","mlp.fc2") ? $4 : 1/0):9 with points pt 4 lc rgb "#aec7e8" title "LoRA fc2"
unset logscale
set logscale x
set title "energy spectrum of full fine-tuning's dW (seed 0)"
set xlabel "k (singular directions)"
set ylabel "fraction of ||dW||_F^2 in the top k"
set yrange [0:1.02]
set arrow 1 from graph 0, first 0.9 to graph 1, first 0.9 nohead dt 2
plot for [t in "classes permuted"] for [l in "mlp.fc1 mlp.fc2"] \
     s using (strcol(1) eq t && strcol(2) eq "full" && strcol(6) eq l ? $7 : 1/0):8 with lines lw 2 title t." ".l
unset multiplot
