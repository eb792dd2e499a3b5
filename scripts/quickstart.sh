#!/usr/bin/env bash
# The main job on the quick-start config: pre-training, then the transfer runs, with TensorBoard logs.
source "$(dirname "$0")/env.sh"
rltransfer experiment configs/quickstart.yaml "$@"
