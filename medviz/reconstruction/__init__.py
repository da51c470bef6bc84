"""Accelerated MRI reconstruction and denoising: k-space simulation, infer, classical baselines,
metrics, viz, data, evaluate, train and card."""
