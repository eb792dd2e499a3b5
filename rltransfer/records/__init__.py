"""The typed records an experiment writes, each read and written by its own module: the experiment's
manifest, a run's result, a bundle's manifest (with its architecture) and a target agent's lineage."""
