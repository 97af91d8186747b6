"""Stage `classifier_report`: Tables 4 and 5 from every classifier run's metrics."""

import argparse

from kitti_pipeline.files import write_json, write_text
from kitti_pipeline.params import load_params
from kitti_pipeline.tables import markdown_tables, read_classifier_runs, summarise_seeds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--runs", required=True, help="folder of per-run metrics JSON")
    parser.add_argument("--summary", required=True, help="JSON: mean and std over seeds")
    parser.add_argument("--tables", required=True, help="Markdown tables")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    cfg, classes = params.classifier, params.data.classes

    runs = read_classifier_runs(args.runs, cfg)
    summary = summarise_seeds(runs, classes)
    write_json(args.summary, summary)
    header = (
        f"Classifier study on `{params.data.frames}`, seeds {list(cfg.seeds)}, "
        f"{cfg.train.epochs} epochs, lr {cfg.train.lr}, batch {cfg.train.batch_size}, "
        f"starting weights: {cfg.init.source}.\n\n"
    )
    write_text(args.tables, header + markdown_tables(summary, runs, classes, cfg.regimes))


if __name__ == "__main__":
    main()
