#!/usr/bin/env bash
# One-shot accelerator benchmark suite (benchmarks/gpu_suite.py): <= 8 minutes on one GPU.
#
#   bash benchmarks/gpu_suite.sh               # JSON: benchmarks/results/gpu_suite-<device>.json
#   bash benchmarks/gpu_suite.sh --smoke       # every part on CPU with tiny sizes (< 60 s)
#   GPU_SUITE_TIMEOUT_S=600 bash benchmarks/gpu_suite.sh --budget-s 540
#
# Needs JAX with its CUDA plugin (pip install "jax[cuda12]") and, for the Torch parts, a CUDA
# build of torch. Every section is wrapped: a failure is recorded in the JSON and the rest runs;
# the JSON is rewritten after every measurement, so even a hard stop keeps what was measured.
# Prints the markdown table at the end (again: python benchmarks/gpu_suite.py --markdown FILE).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
# hard stop a little after the driver's own budget (420 s of sections + start-up), SIGINT first
# so the driver writes its JSON, SIGKILL 20 s later
LIMIT=${GPU_SUITE_TIMEOUT_S:-470}
"$PY" - <<'PYEOF' || true
import jax
print(f"gpu_suite: jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
try:
    import torch
    print(f"gpu_suite: torch {torch.__version__}, cuda available {torch.cuda.is_available()}")
except ImportError:
    print("gpu_suite: torch not installed (Torch sections will be skipped)")
PYEOF
timeout --signal=INT --kill-after=20 "$LIMIT" "$PY" -u benchmarks/gpu_suite.py "$@"
rc=$?
if [ "$rc" -eq 124 ]; then
  echo "gpu_suite: stopped by the ${LIMIT}s limit; partial results are in the JSON" >&2
fi
exit "$rc"
