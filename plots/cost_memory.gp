# Peak memory of a training step per method: the library's own tensors and the
# process's peak RSS (VmHWM), 768x768, r = 32, 1024 tokens.
load "plots/cost_common.gp"
f = "results/cost/time_vs_size.csv"
set terminal pngcairo noenhanced size 900,550
set output "plots/out/cost_memory.png"
set title "Peak memory of one training step, 768x768, r = 32, 1024 tokens"
set ylabel "MiB"
set style fill solid 0.7 border -1
set boxwidth 0.35
set yrange [0:*]
set xrange [-0.6:5.6]
set xtics ("full" 0, "LoRA" 1, "VeRA" 2, "RandLora dense" 3, "RandLora sparse" 4, "RandLora very_sparse" 5) rotate by -20
idx = "full/- lora/- vera/- randlora/dense randlora/sparse randlora/very_sparse"
pos(m, b) = $6 == 768 && $7 == 768 ? (words(substr(idx, 1, strstrt(idx, m."/".b) + strlen(m."/".b))) - 1) : 1/0
set key top left
plot f using (pos(strcol(1), strcol(2)) - 0.18):($24/1048576) with boxes title "peak tensor bytes (library)", \
     f using (pos(strcol(1), strcol(2)) + 0.18):($25/1048576) with boxes title "peak RSS (process VmHWM)"
