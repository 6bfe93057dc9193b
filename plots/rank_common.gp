# Shared settings for the rank plots (loaded by plots/rank_*.gp), which read
# results/rank/*.csv written by `randlora sweep rank` and write plots/out/rank_*.png.
# rank.csv:     1 method 2 bases 3 out 4 in 5 min_dim 6 r 7 num_bases 8 params 9 state 10 step
#               11 rank 12 full_rank 13 rank_bound 14 predicted_rank 15 zero_cols_A
#               16 effective_rank 17 stable_rank 18 energy_top_r 19 sigma_max 20 sigma_min 21 tol
# training.csv: 1 method 2 bases 3 out 4 in 5 min_dim 6 r 7 step 8 loss 9 rank 10 effective_rank
# spectrum.csv: 1 method 2 bases 3 out 4 in 5 r 6 state 7 i 8 sigma 9 sigma_rel
# sparse.csv:   1 bases 2 out 3 in 4 min_dim 5 r 6 density 7 zero_cols_A 8 predicted_rank
#               9 bound_rank 10 rank_perturbed 11 rank_trained
set datafile separator ","
set datafile missing "NaN"
set key top left box opaque font ",9"
set grid
dir = "results/rank"
is(m, b) = strcol(1) eq m && strcol(2) eq b
