"""The crop-classification study: ResNet18 and MobileNetV2 under three regimes.

The models and their backbone/head split (`models`), the training loop and one run of the study
(`train`), the metrics of Tables 4 and 5 (`metrics`), scoring a run on the test crops
(`evaluate`), the init-weights and model file formats (`model_files`) and the confusion figure
(`figures`). Modules here import `core`, `data` and each other, never `detect`.
"""
