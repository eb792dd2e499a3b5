"""Where finished work lives and how it is found again: the keys of pre-trainings and runs (a hash of
exactly what each depends on), the layout of an experiment directory, re-use across experiments, and the
migration of directories an earlier version wrote."""
