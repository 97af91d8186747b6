"""Stage `report`: reports/REPORT.md and a self-contained HTML copy, from metrics and plots.

Tables 1, 4, 5 and 6, confusion matrices, loss curves, val AP against epoch and the detection
pictures, each with the data, profile, seeds and code version behind it, under a summary of the
findings. On the study profile the study's published figures (`--published`) stand beside ours.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import yaml

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import atomic_dir, write_text
from kitti_pipeline.core.profiles import describe_profile
from kitti_pipeline.core.version import code_version
from kitti_pipeline.report.document import ReportInputs, compose_report, html_report
from kitti_pipeline.report.summary import study_citation


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        profiles="folder of profiles, to name ours",
        published="YAML: the study's figures",
        **{
            name: (Path, "an input, as dvc.yaml names it")
            for name in ReportInputs.__dataclass_fields__
        },
        figures="folder for the report's own figures",
        out="the Markdown report",
        html="the HTML copy, images inlined",
    )
    profile = describe_profile(yaml.safe_load(Path(args.params).read_text()), args.profiles)
    published = yaml.safe_load(Path(args.published).read_text())
    citation = study_citation(published["study"])

    inputs = ReportInputs(
        **{name: getattr(args, name) for name in ReportInputs.__dataclass_fields__}
    )
    out, figures_dir = Path(args.out), Path(args.figures)
    markdown, figures = compose_report(
        params,
        inputs,
        out.parent,
        figures_dir,
        profile,
        code_version(),
        citation,
        # The study's setting, even with a few keys changed (the profile says which).
        published if profile.split()[0] == "study" else None,
    )
    with atomic_dir(figures_dir) as tmp:
        for name, figure in figures.items():
            figure.savefig(tmp / name, dpi=100)
            plt.close(figure)
    write_text(out, markdown)
    write_text(args.html, html_report(markdown, out.parent))
    print(f"report: {out} and {args.html}, {len(figures)} figures in {figures_dir}")


if __name__ == "__main__":
    run_cli(main)
