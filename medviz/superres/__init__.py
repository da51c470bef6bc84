"""4x single-image super-resolution of LGG FLAIR slices: bicubic, a pixel-loss generator and its adversarial twin (a GAN)."""
