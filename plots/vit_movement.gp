# Does the task need a high-rank update? Cumulative energy of the singular
# values of full fine-tuning's dW for every adapted linear of the ViT, seed 0,
# one panel per task (sweep vit, spectrum.csv: 1 task 2 method 3 bases 4 r
# 5 seed 6 layer 7 k 8 energy). dim 64: 64 directions at most (fc1, fc2: 64).
set datafile separator ","
set terminal pngcairo noenhanced size 1400,900
set output "plots/out/vit_movement.png"
s = "results/vit/spectrum.csv"
set multiplot layout 2,2 title "Energy spectrum of full fine-tuning's update per layer (seed 0): how high-rank is the required update?"
set xlabel "k (singular directions)"
set ylabel "fraction of ||dW||_F^2 in the top k"
set xrange [1:64]
set yrange [0:1.02]
set grid
set key bottom right font ",7"
do for [t in "fmnist59 digits rotated permuted"] {
    set title t
    set arrow 1 from graph 0, first 0.9 to graph 1, first 0.9 nohead dt 2
    plot for [l in "q k v o fc1 fc2"] s using (strcol(1) eq t && strcol(2) eq "full" && strcol(6) eq "blocks.0.".(l eq "fc1" || l eq "fc2" ? "mlp." : "attn.").l ? $7 : 1/0):8 with lines lw 2 title "block 0 ".l, \
         for [l in "q fc1"] s using (strcol(1) eq t && strcol(2) eq "full" && strcol(6) eq "blocks.3.".(l eq "fc1" ? "mlp." : "attn.").l ? $7 : 1/0):8 with lines dt 3 title "block 3 ".l
}
unset multiplot
