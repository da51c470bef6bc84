"""Sequence model: a recurrent network reads the slice stack of an MR study and gives every slice the
probability that it contains tumour (FLAIR abnormality): data, encoder (slice features from the shipped
segmenter), model (bidirectional GRU and the per-slice head), baselines, metrics, evaluate, train, card."""
