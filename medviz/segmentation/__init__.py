"""Segmentation (2D UNet on slice stacks): preprocess, infer (predict, TTA, post-processing), measure,
viz, export, reference masks, data, evaluate, train and card."""
