"""The car-detection study: YOLOv3 from Darknet cfg files, trained from scratch or transferred.

Darknet cfg parsing, models and `.weights` I/O (`darknet`), the YOLO head's decoding, loss and
NMS (`yolo`), letterboxed frames (`data`), the training loop and one run of the study (`train`),
detection metrics (`metrics`), the test evaluation and pictures (`evaluate`), batched prediction
and the `kitti-detect` command (`predict`), the model file (`model_files`) and the drawing of
detections (`figures`). Modules here import `core`, `data` and each other, never `classify`.
"""
