"""The typed records an experiment writes, each read and written by its own module: the experiment's
manifest, a run's result, a bundle's manifest (with its architecture and observation statistics), a target agent's
lineage and the record of how its observations are built, the machine and the envs' behaviour."""
