"""Stage `train_detector`: one run of the detector study, `transfer` or `scratch`.

`transfer` starts from the init-weights file (every layer but the prediction convs), `scratch`
from random weights. Every `eval_every` epochs and at the last, the run is evaluated on the val
frames and its weights saved in the checkpoints folder; the resumable state is saved after every
epoch, and a rerun after an interruption continues from it when nothing it depends on changed.
Started by `torchrun --nproc-per-node=N`, it trains data-parallel (`core.distributed`).
"""

from pathlib import Path

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.distributed import close_world, init_world
from kitti_pipeline.core.files import write_csv
from kitti_pipeline.detect.model_files import save_best_and_last
from kitti_pipeline.detect.train import train_detector


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        # Not `--run`: torchrun would take it for its own `--run-path`.
        run_name="transfer or scratch",
        frames="frames folder (images/, labels/)",
        split="the crop split, read per frame",
        init="init .weights file (unused by scratch)",
        init_info="the init stage's metrics JSON",
        checkpoints="folder of checkpoints",
        model="folder to write best.pt and last.pt",
        history="CSV of val metrics (a DVC plot)",
    )
    det = params.detector
    world, device = init_world(det.train.device)
    inputs = (args.frames, args.split, args.init, args.init_info, args.checkpoints)
    model, record = train_detector(args.run_name, *inputs, det, world, device)
    close_world(world)
    if world.main:
        cfg_text = Path(det.cfg).read_text()
        save_best_and_last(args.model, model, cfg_text, args.checkpoints, record)
        write_csv(args.history, record["history"], list(record["history"][0]))


if __name__ == "__main__":
    run_cli(main)
