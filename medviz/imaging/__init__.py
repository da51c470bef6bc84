"""What every task draws on: slicing planes, windowing, measurements, figures, overlays, resampling."""
