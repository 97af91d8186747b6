"""The experiments' command lines, `kitti-diff` and `kitti-grid`.

The arguments are parsed before DVC and torch are imported, so that `--help` and a mistyped
option answer at once; the work is imported only once the arguments are good.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from kitti_pipeline.core.cli import run_cli


def diff_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kitti-diff",
        description="Each headline figure of two revisions (git revisions or dvc exp names) "
        "with B - A and a paired 95% bootstrap interval over the test frames and seeds. "
        "As `dvc metrics diff`: A defaults to HEAD, B to the workspace.",
    )
    parser.add_argument("a", nargs="?", default="HEAD", help="revision A (default: HEAD)")
    parser.add_argument("b", nargs="?", default=None, help="revision B (default: the workspace)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--md", action="store_true", help="print a Markdown table")
    output.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument(
        "--resamples", type=int, default=1000, help="bootstrap draws (default 1000)"
    )
    parser.add_argument("--repo", default=".", help="the repository (default: here)")
    return parser


def grid_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kitti-grid",
        description="Queue a grid file's variants as DVC experiments on HEAD, run them and "
        "collect each one's paired difference from the baseline (kitti-diff).",
    )
    parser.add_argument(
        "action",
        choices=("run", "queue", "collect"),
        help="queue the variants; run them (queue, start, wait, collect); or collect them again",
    )
    parser.add_argument("grid", type=Path, help="the grid file, e.g. experiments/questions.yaml")
    parser.add_argument(
        "-j", "--jobs", type=int, default=1, help="experiments run at once (default 1)"
    )
    parser.add_argument(
        "--only", default=None, help="comma-separated variants to run (default: all)"
    )
    parser.add_argument(
        "--resamples", type=int, default=1000, help="bootstrap draws (default 1000)"
    )
    parser.add_argument("--repo", type=Path, default=Path("."), help="the repository")
    parser.add_argument(
        "--baseline", default=None, help="collect: the commit the variants were queued on (HEAD)"
    )
    return parser


def diff_main(argv: list[str] | None = None) -> None:
    args = diff_parser().parse_args(argv)
    from kitti_pipeline.experiments.diff import show_diff

    output = "json" if args.json else "md" if args.md else "table"
    show_diff(args.repo, args.a, args.b, args.resamples, output)


def grid_main(argv: list[str] | None = None) -> None:
    args = grid_parser().parse_args(argv)
    from kitti_pipeline.experiments.grid import run_grid

    run_grid(args.action, args.grid, args.jobs, args.only, args.resamples, args.repo, args.baseline)


def kitti_diff() -> None:
    """The `kitti-diff` console command, with one-line errors (see `core.cli.run_cli`)."""
    run_cli(diff_main)


def kitti_grid() -> None:
    """The `kitti-grid` console command, with one-line errors."""
    run_cli(grid_main)
