"""Stage `report`: reports/REPORT.md and a self-contained HTML copy, from metrics and plots.

Tables 1, 4, 5 and 6, confusion matrices, loss curves, val AP against epoch and the detection
pictures, each with the data, profile, seeds and code version behind it. On the study profile the
study's published figures (`--published`) stand in brackets beside ours.
"""

import argparse
from pathlib import Path

import yaml

from kitti_pipeline.files import atomic_dir, write_text
from kitti_pipeline.params import load_params
from kitti_pipeline.profiles import describe_profile
from kitti_pipeline.provenance import code_version
from kitti_pipeline.report import ReportInputs, compose_report, html_report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--profiles", required=True, help="folder of profiles, to name ours")
    parser.add_argument("--published", required=True, help="YAML: the study's figures")
    for name in ReportInputs.__dataclass_fields__:
        parser.add_argument(f"--{name.replace('_', '-')}", required=True, type=Path)
    parser.add_argument("--figures", required=True, help="folder for the report's own figures")
    parser.add_argument("--out", required=True, help="the Markdown report")
    parser.add_argument("--html", required=True, help="the HTML copy, images inlined")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    profile = describe_profile(yaml.safe_load(Path(args.params).read_text()), args.profiles)
    published = yaml.safe_load(Path(args.published).read_text()) if profile == "study" else None

    inputs = ReportInputs(
        **{name: getattr(args, name) for name in ReportInputs.__dataclass_fields__}
    )
    out, figures_dir = Path(args.out), Path(args.figures)
    markdown, figures = compose_report(
        params, inputs, out.parent, figures_dir, profile, code_version(), published
    )
    with atomic_dir(figures_dir) as tmp:
        for name, figure in figures.items():
            figure.savefig(tmp / name, dpi=100)
    write_text(out, markdown)
    write_text(args.html, html_report(markdown, out.parent))
    print(f"report: {out} and {args.html}, {len(figures)} figures in {figures_dir}")


if __name__ == "__main__":
    main()
