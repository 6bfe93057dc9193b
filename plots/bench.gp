# make bench: median time of each target configuration (bars) beside the
# FLOP-model bound at this machine's SGEMM rate (points; merges have no bound
# drawn: their FLOP model counts the dense product). results/bench/bench.csv:
# 1 target 2 method 3 bases 4 path 5 chosen ... 13 median_ms 14 p25_ms 15 p75_ms ... 24 bound_ms
set datafile separator ","
set terminal pngcairo noenhanced size 1100,550
set output "plots/out/bench.png"
set title "make bench: the performance targets (1 thread unless t2)"
set ylabel "ms (log scale)"
set logscale y
set style fill solid 0.6 border -1
set boxwidth 0.6
set xtics rotate by -35 font ",9"
set grid y
set key top left
f = "results/bench/bench.csv"
plot f every ::1 using 0:13:xtic(1) with boxes title "median step / merge time", \
     f every ::1 using 0:13:14:15 with yerrorbars lc rgb "black" pt 0 title "IQR", \
     f every ::1 using 0:(strcol(5) eq "merge" ? 1/0 : $24) with points pt 7 ps 1.3 lc rgb "red" title "FLOP-model bound"
