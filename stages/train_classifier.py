"""Stage `train_classifier` / `train_classifier_scratch`: one (architecture, regime, seed) run.

`frozen` and `finetune` start from the init-weights file; `scratch` reads none; the control,
`frozen_random`, trains as `frozen` does on a backbone drawn from `classifier.init.seed`, as the
`random` init source draws it. Checkpoints after
every epoch (not a DVC output); a rerun after an interruption resumes from the checkpoint when
the run's params, crops, starting weights and library code are unchanged. Started by
`torchrun --nproc-per-node=N`, it trains data-parallel (see `kitti_pipeline.core.distributed`).
"""

from kitti_pipeline.classify.model_files import classifier_provenance, save_classifier
from kitti_pipeline.classify.train import train_classifier
from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.distributed import close_world, init_world
from kitti_pipeline.core.files import write_csv, write_json
from kitti_pipeline.core.params import CONTROL

HISTORY_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        arch="resnet18 or mobilenet_v2",
        regime="scratch, frozen, finetune, lpft or frozen_random (the control)",
        seed=(int, "the run's seed"),
        crops="crops folder",
        split="split CSV",
        init=(str, "init-weights file (frozen and finetune only)", None),
        checkpoint="the run's checkpoint file",
        model="model file to write",
        provenance="JSON: where the model file came from",
        history="per-epoch CSV (a DVC plot)",
    )
    cfg = params.classifier.train
    world, device = init_world(cfg.device)
    run = (args.arch, args.regime, args.seed)
    init = params.classifier.init.seed if args.regime == CONTROL else args.init
    inputs = (args.crops, args.split, init, args.checkpoint)
    model, record = train_classifier(*run, *inputs, params.data.classes, cfg, world, device)
    close_world(world)
    if world.main:
        save_classifier(args.model, model, record)
        write_json(args.provenance, classifier_provenance(record))
        write_csv(args.history, record["history"], HISTORY_FIELDS)


if __name__ == "__main__":
    run_cli(main)
