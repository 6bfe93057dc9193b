# Shared settings for the cost plots (loaded by plots/cost_*.gp).
# Columns of results/cost/*.csv (bench_csv_header):
#  1 method 2 bases 3 path 4 chosen 5 r 6 out 7 in 8 tokens 9 layers 10 threads
# 11 params 12 median_ms 13 p25_ms 14 p75_ms 15 ci95_lo_ms 16 ci95_hi_ms 17 cpu_ms
# 18 reps 19 gflop 20 gflops 21 sgemm_gflops 22 sgemm_fraction 23 bound_ms
# 24 peak_tensor_bytes 25 peak_rss_bytes 26 core 27 model 28 dx 29 first_ms
# 30 inner_ms 31 fma_gflops 32 foreign_cpu
set datafile separator ","
set termoption noenhanced
set key top left box opaque font ",9"
set grid
is(m, b) = strcol(1) eq m && strcol(2) eq b
