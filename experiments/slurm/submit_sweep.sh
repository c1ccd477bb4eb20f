#!/usr/bin/env bash
# Submits a calibench sweep to Slurm as N array tasks and a merge job that runs after all of
# them (afterany: shards whose cells failed still leave their errors for the reports).
#   experiments/slurm/submit_sweep.sh SPEC DIR N [extra sbatch options...]
# CALIBENCH (default: calibench on PATH) names the binary on the nodes.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 SPEC DIR N [sbatch options...]" >&2; exit 2; }
spec=$1 dir=$2 n=$3
shift 3
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "submit_sweep: N must be a positive integer (got '$n')" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
array=$(sbatch --parsable --array=0-$((n - 1)) "$@" "$here/sweep_shard.sbatch" "$spec" "$dir")
array=${array%%;*}  # --parsable prints "jobid[;cluster]"
merge=$(sbatch --parsable --dependency=afterany:"$array" "$@" "$here/sweep_merge.sbatch" "$spec" "$dir")
echo "submitted: shards $array (array 0-$((n - 1))), merge ${merge%%;*}; reports in $dir"
