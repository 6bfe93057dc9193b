# Claim (d): measured rank vs predicted min_dim·(1-(1-p)^r) and vs the exact bound min_dim - Z.
load "plots/rank_common.gp"
f = dir."/sparse.csv"
set terminal pngcairo size 1200,520
set output "plots/out/rank_sparse.png"
set multiplot layout 1,2 title "Sparse bases: measured rank of ΔW (perturbed) / min\\_dim, all shapes and r"
set xlabel "predicted  (1 - (1-p)^r)"
set ylabel "measured rank / min\\_dim"
set xrange [0:1.05]; set yrange [0:1.05]
set key top left
set title "vs the expectation over random A"
plot f using (strcol(1) eq "sparse" ? $8/$4 : 1/0):($10/$4) with points pt 7 ps 1.2 title "sparse (p = 1/3)", \
     f using (strcol(1) eq "very_sparse" ? $8/$4 : 1/0):($10/$4) with points pt 5 ps 1.2 title "very\\_sparse (p = 1/sqrt(min\\_dim))", \
     x with lines dt 2 lc rgb "black" title "measured = predicted"
set title "vs the bound from the generated A: min\\_dim - #zero columns"
set xlabel "(min\\_dim - Z) / min\\_dim"
plot f using (strcol(1) eq "sparse" ? $9/$4 : 1/0):($10/$4) with points pt 7 ps 1.2 title "sparse", \
     f using (strcol(1) eq "very_sparse" ? $9/$4 : 1/0):($10/$4) with points pt 5 ps 1.2 title "very\\_sparse", \
     x with lines dt 2 lc rgb "black" title "measured = bound"
unset multiplot
