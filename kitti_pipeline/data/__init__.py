"""The data layer both studies share: frames, labels, crops and splits.

One box convention (xyxy pixels) in `boxes`, the YOLO and KITTI `label_2` formats in `labels`,
the KITTI-like scene generator that stands in for KITTI offline (`synthetic`), the builder of the
study's subset from a real KITTI folder (`subset`), object crops (`crops`) and the leak-free,
frame-grouped split (`splits`). Modules here import only `core` and each other.
"""
