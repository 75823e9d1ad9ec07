r"""A spectrogram sheet of the synthetic FUSS generator's sound kinds: what the data is.

    python benchmarks/sound_kinds_sheet.py [--output docs/sound_kinds.png] [--seconds 3] \
        [--sample_rate 16000] [--seed 0] [--dpi 70]

One example of every kind of `data_pipeline/sound_kinds.py`, foregrounds first (the
classic ones marked), then the backgrounds, each drawn from its own generator seeded by
(seed, kind index), as a log-magnitude spectrogram (dB below the panel's peak, 70 dB shown),
labelled with its kind name and role. A foreground is zero outside its events.
"""
import io
import os

from absl import app
from absl import flags
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402

from data_pipeline import sound_kinds  # noqa: E402

_OUTPUT = flags.DEFINE_string('output', 'docs/sound_kinds.png', 'PNG to write.')
_SECONDS = flags.DEFINE_float('seconds', 3.0, 'Length of each example (s).')
_SAMPLE_RATE = flags.DEFINE_integer('sample_rate', 16000, 'Sample rate (Hz).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the examples.')
_DPI = flags.DEFINE_integer('dpi', 70, 'Resolution of the PNG.')
_COLUMNS = flags.DEFINE_integer('columns', 4, 'Panels per row.')

_RANGE_DB = 70.0


def spectrogram_db(signal: np.ndarray, sample_rate: int) -> np.ndarray:
  """Log-magnitude STFT [bins, frames] (32 ms Hann windows, 8 ms hop), dB below the peak."""
  nfft = 1 << int(round(np.log2(0.032 * sample_rate)))
  hop = nfft // 4
  padded = np.pad(np.asarray(signal, np.float64), (nfft // 2, nfft // 2))
  frames = np.lib.stride_tricks.sliding_window_view(padded, nfft)[::hop]
  power = np.abs(np.fft.rfft(frames * np.hanning(nfft), axis=-1)) ** 2
  db = 10 * np.log10(power + 1e-20)
  return np.maximum(db - db.max(), -_RANGE_DB).T


def kinds_to_draw():
  """(name, role, synthesiser) of every kind: foregrounds, then backgrounds."""
  classic = set(sound_kinds.CLASSIC_FOREGROUND) | {sound_kinds.STATIONARY_BACKGROUND}
  rows = []
  for role, kinds in (('foreground', sound_kinds.FOREGROUND_KINDS),
                      ('background', sound_kinds.BACKGROUND_KINDS)):
    for name, synth in kinds.items():
      rows.append((name, role + (', classic' if name in classic else ''), synth))
  return rows


def draw_sheet(path: str, seconds: float, sample_rate: int, seed: int, dpi: int,
               columns: int) -> None:
  kinds = kinds_to_draw()
  n = int(round(seconds * sample_rate))
  rows = -(-len(kinds) // columns)
  figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.1 * rows),
                              sharex=True, sharey=True, squeeze=False)
  for index, (name, role, synth) in enumerate(kinds):
    signal = synth(n, np.random.default_rng([seed, index]), sample_rate)
    axis = axes[index // columns][index % columns]
    axis.imshow(spectrogram_db(signal, sample_rate), origin='lower', aspect='auto',
                cmap='magma', vmin=-_RANGE_DB, vmax=0,
                extent=(0, seconds, 0, sample_rate / 2000), interpolation='nearest')
    axis.set_title(f'{name}  ({role})', fontsize=10)
  for index in range(len(kinds), rows * columns):
    axes[index // columns][index % columns].axis('off')
  for row in axes:
    row[0].set_ylabel('kHz')
  for axis in axes[-1]:
    axis.set_xlabel('s')
  figure.suptitle(f'data_pipeline/sound_kinds.py: one example of each kind ({sample_rate} Hz, '
                  f'dB below each panel\'s peak, {_RANGE_DB:.0f} dB shown)', fontsize=12)
  figure.tight_layout(rect=(0, 0, 1, 0.98))
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  buffer = io.BytesIO()
  figure.savefig(buffer, dpi=dpi)
  plt.close(figure)
  # A 128-colour palette keeps the sheet small (the colour map and the text need no more).
  buffer.seek(0)
  image = PIL.Image.open(buffer).convert('RGB').quantize(colors=128)
  image.save(path, optimize=True)


def main(argv):
  del argv
  draw_sheet(_OUTPUT.value, _SECONDS.value, _SAMPLE_RATE.value, _SEED.value, _DPI.value,
             _COLUMNS.value)
  print(f'wrote {_OUTPUT.value} ({os.path.getsize(_OUTPUT.value) / 1000:.0f} kB)')


if __name__ == '__main__':
  app.run(main)
