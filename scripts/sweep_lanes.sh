#!/usr/bin/env bash
# Run an ablation grid in the background as two lanes (one thread each, the machine's two cores)
# from a git worktree pinned at this checkout's HEAD, so that editing this checkout never changes
# the code a running grid imports. Finished runs stay in the worktree's run folders; `--report`
# writes those of the most recently written worktree as rows of this checkout's
# results/<grid>.{csv,md,json}, and a later session (a fresh clone without those folders) trains
# only the runs those rows do not hold.
#
#   scripts/sweep_lanes.sh GRID "PATTERNS"                                    both lanes, one queue
#   scripts/sweep_lanes.sh GRID "PATTERNS OF LANE A" "PATTERNS OF LANE B"   a queue per lane
#   scripts/sweep_lanes.sh --report GRID                                      write the results
#
# SWEEP_COMMIT=<commit> pins the worktree at that commit instead of HEAD: a later session whose
# HEAD has moved on continues a grid in the worktree its runs started in (a run resumes only with
# the config it started with, whose data.root names that worktree).
# Patterns are shell globs over the grid's variant names ("ce_*"); a word "seeds=0,2" restricts
# that lane to those seeds. Each lane trains its variants seed-major; given one set of patterns,
# both lanes walk the same runs and each run is trained by the lane that reaches it first (the
# other finds its folder locked and moves on), so neither idles while runs remain. A lane whose
# variants pin bf16 (train.amp=bf16) is refused on a CPU without native bf16, where it would run
# emulated at a fraction of the speed.
# Logs: ../sweeplogs/<grid>-{A,B}.log.
set -euo pipefail
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
py="$repo/.venv/bin/python"

if [ "${1:-}" = "--report" ]; then
  grid=$2
  name=$(basename "$grid" .yaml)
  tree=$( (ls -dt "$repo"/../sweep-*/runs/ablate/"$name" 2>/dev/null || true) | head -n 1 | sed 's#/runs/ablate/.*##')
  [ -n "$tree" ] || { echo "sweep_lanes: no worktree ../sweep-*/ holds runs/ablate/$name" >&2; exit 1; }
  cd "$tree"
  exec env PYTHONPATH="$tree" "$py" -m tdsa ablate --grid "$grid" --out "runs/ablate/$name" \
    --results "$repo/results/$name" --report-only
fi

[ $# -eq 2 ] || [ $# -eq 3 ] || {
  echo "usage: $0 GRID \"PATTERNS\" [\"LANE B PATTERNS\"] | --report GRID" >&2; exit 2; }
grid=$1
spec_a=$2
spec_b=${3:-$2}
name=$(basename "$grid" .yaml)
commit=$(git -C "$repo" rev-parse --short "${SWEEP_COMMIT:-HEAD}")
tree="$repo/../sweep-$commit"
logs="$repo/../sweeplogs"
mkdir -p "$logs"
[ -d "$tree" ] || git -C "$repo" worktree add --detach "$tree" "$commit" >/dev/null

# Expand the patterns, refuse emulated bf16 and generate the lanes' synthetic data once (the two
# lanes would otherwise both write the same missing root).
lanes=$(cd "$tree" && PYTHONPATH="$tree" "$py" - "$grid" "$spec_a" "$spec_b" <<'EOF'
import fnmatch
import sys

from tdsa.engine.build import ensure_synthetic
from tdsa.engine.distributed import DistInfo
from tdsa.experiments.grid import load_grid
from tdsa.hardware import cpu_has_native_bf16

grid = load_grid(sys.argv[1])
data = {}
for spec in sys.argv[2:]:
    words = spec.split()
    seeds = [int(s) for w in words if w.startswith("seeds=") for s in w[6:].split(",")]
    names = [v for v in grid.variants
             if any(fnmatch.fnmatch(v, p) for p in words if not p.startswith("seeds="))]
    if not names:
        sys.exit(f"sweep_lanes: {spec!r} matches no variant of {sys.argv[1]}")
    if any(s not in grid.seeds for s in seeds):
        sys.exit(f"sweep_lanes: {spec!r} names a seed outside the grid's {grid.seeds}")
    for name in names:
        cfg = grid.config(name, grid.seeds[0])
        if cfg.train.amp == "bf16" and cfg.runtime.device != "cuda" and not cpu_has_native_bf16():
            sys.exit(f"sweep_lanes: {name} of {sys.argv[1]} pins train.amp=bf16 and this CPU "
                     "has no native bf16")
        data[cfg.data.root] = cfg.data
    print(" ".join(names) + (" --seeds " + " ".join(map(str, seeds)) if seeds else ""))
for data_config in data.values():
    ensure_synthetic(data_config, DistInfo())
EOF
)
lane_a=$(sed -n 1p <<<"$lanes")
lane_b=$(sed -n 2p <<<"$lanes")
for lane in A B; do
  variants=$([ $lane = A ] && echo "$lane_a" || echo "$lane_b")
  # shellcheck disable=SC2086  # variant names and seeds are one word each
  # The redirections cover the whole subshell, so that nothing holds the caller's output open.
  (cd "$tree" && PYTHONPATH="$tree" exec setsid nohup "$py" -m tdsa ablate --grid "$grid" \
     --out "runs/ablate/$name" --results "$repo/results/$name" --only $variants) \
     >> "$logs/$name-$lane.log" 2>&1 < /dev/null &
  echo "lane $lane ($variants) from $tree at $commit: $logs/$name-$lane.log"
done
