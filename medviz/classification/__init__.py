"""Image classification (MedMNIST-style 2D classifiers): preprocess, infer, calibration, metrics,
viz, data, evaluate, train and card."""
