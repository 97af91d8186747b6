"""Stage `train_detector` / `train_detector_scratch`: one run of the detector study.

`scratch` starts from random weights and reads no init files; the runs of `detector.regimes`
start from the init-weights file and train what `kitti_pipeline.detect.regimes` says. Every
`eval_every` epochs and at the last, the run is evaluated on the val frames and its resumable
state saved in the checkpoints folder (not a DVC output); a rerun after an interruption
continues from it when nothing it depends on changed.
Started by `torchrun --nproc-per-node=N`, it trains data-parallel (`core.distributed`).
"""

from pathlib import Path

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.distributed import close_world, init_world
from kitti_pipeline.core.files import write_csv, write_json
from kitti_pipeline.detect.model_files import detector_provenance, save_best_and_last
from kitti_pipeline.detect.run import train_detector


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        # Not `--run`: torchrun would take it for its own `--run-path`.
        run_name="scratch, or one of detector.regimes (transfer, zeroshot, frozen, lpft)",
        seed=(int, "seed of the run (an entry of detector.seeds)"),
        cfg="the Darknet cfg to train (the detector_anchors stage's)",
        frames="frames folder (images/, labels/)",
        split="the frame split CSV",
        init=(str, "init .weights file (transfer only)", None),
        init_info=(str, "the init stage's metrics JSON (transfer only)", None),
        checkpoints="folder of checkpoints",
        model="folder to write best.pt and last.pt",
        provenance="JSON: where the model files came from",
        history="CSV of val metrics (a DVC plot)",
    )
    det = params.detector
    world, device = init_world(det.train.device)
    inputs = (args.frames, args.split, args.init, args.init_info, args.checkpoints)
    model, best, record = train_detector(
        args.run_name, args.seed, *inputs, det, world, device, cfg_path=args.cfg
    )
    close_world(world)
    if world.main:
        save_best_and_last(args.model, model, best, Path(args.cfg).read_text(), record)
        write_json(args.provenance, detector_provenance(record, best))
        write_csv(args.history, record["history"], list(record["history"][0]))


if __name__ == "__main__":
    run_cli(main)
