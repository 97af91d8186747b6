"""The command lines of the stages and tools: arguments, and errors a user can read.

Every stage script parses `--params` and the paths dvc.yaml passes with `parse_stage`. Stages
and commands run under `run_cli`: an error in the input (a bad label, a missing file, a params
key) ends the command with one line naming the problem and exit status 1, and the traceback is
there for `--debug` or `KITTI_DEBUG=1`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from kitti_pipeline.core.params import Params, load_params


def parse_stage(
    doc: str | None, argv: Sequence[str] | None, **options: str | tuple
) -> tuple[argparse.Namespace, Params]:
    """Parse a stage's arguments and load its params.

    Args:
        doc: The stage's docstring, shown by `--help`.
        argv: The arguments (None: `sys.argv`).
        **options: One required option per keyword: `init_info="..."` gives `--init-info`, with
            that help text; a `(type, help)` pair converts the value (`seed=(int, "...")`),
            and a `(type, help, default)` triple makes the option optional.

    Returns:
        The parsed arguments (attributes named as the keywords) and the params file's contents
        (`--params`, default params.yaml).
    """
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--params", default="params.yaml")
    for name, spec in options.items():
        kind, text, *default = spec if isinstance(spec, tuple) else (str, spec)
        flag = f"--{name.replace('_', '-')}"
        if default:
            parser.add_argument(flag, type=kind, help=text, default=default[0])
        else:
            parser.add_argument(flag, required=True, type=kind, help=text)
    args = parser.parse_args(argv)
    return args, load_params(args.params)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """Add `--device` (auto, cpu or cuda) to a command that runs a model."""
    parser.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where to run (default auto: CUDA when torch can use it)",
    )


# What bad input, missing files and unusable devices raise; anything else is a bug and keeps
# its traceback.
USER_ERRORS = (ValueError, OSError, RuntimeError, FloatingPointError)


def run_cli(main: Callable[[list[str] | None], object], argv: Sequence[str] | None = None) -> None:
    """Run a command's `main(argv)`, turning a user error into one line and exit status 1.

    Args:
        main: The command's entry point, taking its arguments.
        argv: The arguments (None: `sys.argv[1:]`); `--debug` among them is taken out and
            lets the error through with its traceback, as `KITTI_DEBUG=1` does.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("KITTI_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    try:
        main(argv)
    except USER_ERRORS as err:
        if debug:
            raise
        name = os.path.basename(sys.argv[0]) or "kitti"
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{name}: error: {message} (--debug for the traceback)", file=sys.stderr)
        raise SystemExit(1) from None
