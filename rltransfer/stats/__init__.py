"""Statistics of learning curves: the per-run metrics, bootstrap intervals, the claims' test and the
report's rows (numpy and scipy only: no torch)."""
