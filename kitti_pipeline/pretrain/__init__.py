"""Where the transfer runs' starting weights come from: offline stand-ins and the real files.

Without internet there is no ImageNet or COCO, so each gets a generated stand-in task drawn from
the same ten non-KITTI object classes (`objects`): one-object images to classify (`imagenet`)
and scenes to detect them in (`coco`). `real_weights` finds the real files instead: torchvision's
ImageNet weights and Darknet `.weights` by path or URL. This package sits above both studies:
it imports `core`, `classify` and `detect`, and neither study imports it.
"""
