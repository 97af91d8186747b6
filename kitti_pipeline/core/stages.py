"""The command line every stage script shares: `--params` and the paths dvc.yaml passes."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from kitti_pipeline.core.params import Params, load_params


def parse_stage(
    doc: str | None, argv: Sequence[str] | None, **options: str | tuple[type, str]
) -> tuple[argparse.Namespace, Params]:
    """Parse a stage's arguments and load its params.

    Args:
        doc: The stage's docstring, shown by `--help`.
        argv: The arguments (None: `sys.argv`).
        **options: One required option per keyword: `init_info="..."` gives `--init-info`, with
            that help text; a `(type, help)` pair converts the value (`seed=(int, "...")`).

    Returns:
        The parsed arguments (attributes named as the keywords) and the params file's contents
        (`--params`, default params.yaml).
    """
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--params", default="params.yaml")
    for name, spec in options.items():
        kind, text = spec if isinstance(spec, tuple) else (str, spec)
        parser.add_argument(f"--{name.replace('_', '-')}", required=True, type=kind, help=text)
    args = parser.parse_args(argv)
    return args, load_params(args.params)
