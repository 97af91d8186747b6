"""Stage `crop`: denormalise every label, clip, crop and resize; write crops and a manifest.

Writes `images/<frame>_<line>.png`, `manifest.csv` (crop, class, frame, label line, pixel box),
`skipped.csv` (what was left out and why) and `summary.json` (counts).
"""

from rich.progress import track

from kitti_pipeline.core.cli import parse_stage, run_cli
from kitti_pipeline.core.files import atomic_dir, write_csv, write_json
from kitti_pipeline.data.crops import (
    MANIFEST_FIELDS,
    SKIP_FIELDS,
    check_classes,
    crop_frame,
    crop_summary,
    list_frames,
)


def main(argv=None):
    args, params = parse_stage(
        __doc__,
        argv,
        frames="frames folder: images/, labels/, classes.txt",
        out="crops folder to create",
    )
    cfg, classes = params.crop, params.data.classes
    frames, skips = list_frames(args.frames, cfg.on_bad_input)
    check_classes(args.frames, classes)
    options = (cfg.image_size, cfg.resize, cfg.min_box_size, cfg.label_tolerance, cfg.on_bad_input)
    rows = []
    with atomic_dir(args.out) as out:
        (out / "images").mkdir()
        for frame in track(frames, description="crop"):
            crops, skipped = crop_frame(frame, classes, *options)
            for crop in crops:
                crop.image.save(out / "images" / crop.name)
                rows.append(crop.row())
            skips += skipped
        write_csv(out / "manifest.csv", rows, MANIFEST_FIELDS)
        write_csv(out / "skipped.csv", [s.row() for s in skips], SKIP_FIELDS)
        write_json(out / "summary.json", crop_summary(len(frames), len(rows), skips))
    print(f"crop: {len(rows)} crops from {len(frames)} frames, {len(skips)} skipped")


if __name__ == "__main__":
    run_cli(main)
