"""Analysis window and hop of the TDCN++ front ends, in seconds (dependency-free).

Defined once here so the model, the official-checkpoint importer and the eval
baselines agree; eval may import it because it imports nothing.
"""

# The STFT front end: 32 ms windows, 8 ms hop (the published TDCN++ hparams).
STFT_WINDOW_SECONDS = 0.032
STFT_HOP_SECONDS = 0.008
# The learned-basis front end: 2.5 ms windows, 1.25 ms hop.
BASIS_WINDOW_SECONDS = 0.0025
BASIS_HOP_SECONDS = 0.00125
