"""Readers of public data sets that several tasks train on (e.g. the LGG FLAIR slices)."""
