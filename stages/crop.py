"""Stage `crop`: denormalise every label, clip, crop and resize; write crops and a manifest.

Writes `images/<frame>_<line>.png`, `manifest.csv` (crop, class, frame, label line, pixel box),
`skipped.csv` (what was left out and why) and `summary.json` (counts).
"""

import argparse
from collections import Counter
from pathlib import Path

from rich.progress import track

from kitti_pipeline.crops import MANIFEST_FIELDS, SKIP_FIELDS, crop_frame, list_frames
from kitti_pipeline.files import atomic_dir, write_csv, write_json
from kitti_pipeline.labels import read_classes
from kitti_pipeline.params import load_params


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument(
        "--frames", required=True, help="frames folder: images/, labels/, classes.txt"
    )
    parser.add_argument("--out", required=True, help="crops folder to create")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    cfg, classes = params.crop, params.data.classes
    found = read_classes(Path(args.frames) / "classes.txt")
    if found != classes:
        raise SystemExit(
            f"{args.frames}/classes.txt lists {list(found)}, but data.classes is {list(classes)}"
        )

    frames, skips = list_frames(args.frames, cfg.on_bad_input)
    rows = []
    with atomic_dir(args.out) as out:
        (out / "images").mkdir()
        for frame in track(frames, description="crop"):
            crops, skipped = crop_frame(
                frame,
                classes,
                cfg.image_size,
                cfg.resize,
                cfg.min_box_size,
                cfg.label_tolerance,
                cfg.on_bad_input,
            )
            for crop in crops:
                crop.image.save(out / "images" / crop.name)
                rows.append(crop.row())
            skips += skipped
        write_csv(out / "manifest.csv", rows, MANIFEST_FIELDS)
        write_csv(out / "skipped.csv", [s.row() for s in skips], SKIP_FIELDS)
        write_json(
            out / "summary.json",
            {
                "frames": len(frames),
                "crops": len(rows),
                "skipped": dict(sorted(Counter(s.reason for s in skips).items())),
            },
        )
    print(f"crop: {len(rows)} crops from {len(frames)} frames, {len(skips)} skipped")


if __name__ == "__main__":
    main()
