#!/usr/bin/env bash
# The GPU checks, as one command on one CUDA device (a lent machine with torch but no dvc):
#
#   bash bench/gpu_check.sh            # under 10 minutes on an H200
#   bash bench/gpu_check.sh --dry-run  # on any machine: collect the tests, print the commands
#
# 1. tests/gpu (marker gpu): bfloat16 and float16 + grad-scaler steps, channels_last, the
#    compiled step, DDP with SyncBatchNorm on one device, evaluation on the device
#    -> bench/results/gpu_tests_cuda.json
# 2. bench/step_ops.py on CUDA: operators and seconds of the eager and the compiled step
#    -> bench/results/step_ops_cuda.json
# 3. bench/study_timing.py --profile study --stand-ins: every stage of the study at its shapes
#    on generated frames, with the epochs cut to STUDY_EPOCHS (default 5) per detector run and
#    one seed, so a run fits; per stage seconds -> bench/results/study_timing_cuda.json
#
# The lent machine has every dependency but ruamel.yaml (dvc's, which the profiles use) and can
# fetch nothing: carry its wheels in .whl/ (git-ignored), fetched beforehand with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl ruamel.yaml ruamel.yaml.clib
# and this script installs them first.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=false
[[ "${1:-}" == "--dry-run" ]] && dry=true
python=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --target /tmp/gpu_check_site .whl/*.whl
    export PYTHONPATH="/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
epochs=${STUDY_EPOCHS:-5}
study=(bench/study_timing.py --profile study --stand-ins
       --set data.frames=data/synthetic --set detector.seeds=[0] --set classifier.seeds=[0]
       --set "detector.train.epochs=$epochs" --set "detector.train.eval_every=$epochs")

if $dry; then
    "$python" -m pytest -q -p no:cacheprovider --collect-only tests/gpu
    echo "+ $python -m pytest -q tests/gpu --gpu-results bench/results/gpu_tests_cuda.json"
    echo "+ $python bench/step_ops.py --device cuda"
    "$python" "${study[@]}" --dry-run
    exit 0
fi
"$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device")'
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
status=0
"$python" -m pytest -q -p no:cacheprovider tests/gpu \
    --gpu-results bench/results/gpu_tests_cuda.json || status=$?
"$python" bench/step_ops.py --device cuda || status=$?
"$python" "${study[@]}" --out bench/results/study_timing_cuda.json || status=$?
exit $status
