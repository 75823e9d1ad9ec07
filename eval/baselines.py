"""Floor and ceiling systems scored beside every model: no separation, oracle binary masks."""
from __future__ import annotations

import numpy as np
import scipy.signal

from mixit import stft_constants

# The analysis of the TDCN++ masking network: 32 ms windows, 8 ms hop.
WINDOW_SECONDS = stft_constants.STFT_WINDOW_SECONDS
HOP_SECONDS = stft_constants.STFT_HOP_SECONDS

MIXTURE = 'mixture'
ORACLE_BINARY_MASK = 'oracle_binary_mask'
NAMES = (MIXTURE, ORACLE_BINARY_MASK)
TITLES = {MIXTURE: 'mixture (no separation)', ORACLE_BINARY_MASK: 'oracle binary mask'}


def no_separation(sources: np.ndarray, mixture: np.ndarray) -> np.ndarray:
  """The mixture as the single output: `[1, time]`.

  Its 1-source SI-SNR is the 80 dB cap (the mixture is the source) and its SI-SNRi is 0 dB by
  definition; every multi-source example is under-separated.
  """
  del sources
  return np.asarray(mixture, np.float64)[np.newaxis]


def _stft_params(sample_rate: int):
  window = int(round(WINDOW_SECONDS * sample_rate))
  hop = int(round(HOP_SECONDS * sample_rate))
  return dict(fs=sample_rate, window='hann', nperseg=window, noverlap=window - hop,
              boundary='zeros', padded=True)


def oracle_binary_mask(sources: np.ndarray, mixture: np.ndarray,
                       sample_rate: int) -> np.ndarray:
  """Ideal binary masks on a 32 ms / 8 ms STFT, applied to the mixture.

  Every time-frequency bin of the mixture goes entirely to the reference source that is
  loudest there; the masked STFTs are inverted and cropped to the input length.

  Args:
    sources: `[source, time]` references.
    mixture: `[time]`.
    sample_rate: Hz, sets the window and hop in samples (512 / 128 at 16 kHz).

  Returns:
    `[source, time]` float64 estimates.
  """
  sources = np.asarray(sources, np.float64)
  mixture = np.asarray(mixture, np.float64)
  params = _stft_params(sample_rate)
  length = mixture.shape[-1]
  if length < params['nperseg']:
    raise ValueError(f'oracle_binary_mask: {length} samples is shorter than one '
                     f'{params["nperseg"]}-sample STFT window')
  _, _, source_stft = scipy.signal.stft(sources, **params)
  _, _, mixture_stft = scipy.signal.stft(mixture, **params)
  winner = np.argmax(np.abs(source_stft), axis=0)
  masks = winner[np.newaxis] == np.arange(sources.shape[0])[:, np.newaxis, np.newaxis]
  _, estimates = scipy.signal.istft(
      masks * mixture_stft[np.newaxis], fs=sample_rate, window=params['window'],
      nperseg=params['nperseg'], noverlap=params['noverlap'], boundary=True)
  return estimates[:, :length]
