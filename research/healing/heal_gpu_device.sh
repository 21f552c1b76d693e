#!/bin/bash
# What a lent GPU machine runs (the device tool's `run`): every VARIANT of research/healing/heal_gpu.py healed from
# every start in BUNDLE, all at once sharing the GPU, and in $OUT what `heal_gpu.py unpack` needs.
#
#   call 1, carry BUNDLE-extra:      mkdir -p /tmp/extra && cp -r BUNDLE-extra/calib /tmp/extra/
#   call 2 (within the machine's 30 s idle), carry BUNDLE and .whl (soundfile, soxr and their needs):
#                                    bash research/healing/heal_gpu_device.sh BUNDLE VARIANT...
#   here:                            mkdir OUT && for t in FILES_AT/part-*.tar; do tar xf $t -C OUT; done
#                                    python research/healing/heal_gpu.py unpack OUT runs/refine --bundle BUNDLE ...
#
# A call carries at most 64 MiB (hence BUNDLE-extra, see `heal_gpu.py pack`) and brings back at most 8 files
# of 16 MiB: the log goes into the first tar and the deltas (about 5 MiB each for tiny.en) two to a tar,
# so one call returns up to 12 runs (64 MiB together). HEAL_GPU_ARGS adds options to `run` (a smoke test:
# "--clips 24 --steps 2").
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: heal_gpu_device.sh BUNDLE VARIANT..." >&2; exit 2; }
bundle=$1
shift
if [ -d .whl ] && ! python3 -c "import soundfile, soxr" 2>/dev/null; then  # the GPU machine lacks them
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
extra=()
[ -d /tmp/extra ] && extra=(--extra /tmp/extra)
res=$(mktemp -d)
t0=$(date +%s)
# transformers reports every decoder weight a lite start does not ship: only the summaries are worth reading
python3 research/healing/heal_gpu.py run "$bundle" "$res" "${extra[@]}" --processes $# --variants "$@" ${HEAL_GPU_ARGS:-} 2>&1 \
  | grep -E "healing:|Error|error|failed" || true
echo "all done in $(( $(date +%s) - t0 )) s"
[ -f "$res/log.json" ] || { echo "no log.json: every process failed" >&2; exit 1; }
cd "$res"
ls delta-*.safetensors | xargs -n 2 | {
  i=0
  while read -r group; do
    tar cf "$OUT/part-$i.tar" $( [ $i = 0 ] && echo log.json ) $group
    i=$((i + 1))
  done
}
ls -l "$OUT"
