"""The sound kinds of the synthetic FUSS generator: procedural synthesisers, numpy only.

Every kind is a function `(n, rng, sample_rate) -> float array [n]` that draws all its
parameters from `rng`, so a kind's output is a function of the generator's state. Foreground
kinds place 1..k events in random spans of the clip and are exactly zero outside them;
background kinds span the whole clip. Levels are set later (`synthetic.set_levels`), so the
scale of a kind's output is arbitrary.

Two kind sets are named (`KIND_SETS`):

- `classic`: the first generator's five foregrounds (harmonic tones, chirps, noise bursts,
  click trains, AM/FM textures) over stationary coloured noise. Their code is unchanged, so
  data made with them is byte-identical to the data made before the other kinds existed.
- `varied`: the classic kinds plus kinds nearer FUSS's (FSD50K) content: speech-like voices
  (a source-filter model: a glottal pulse train with a pitch contour through cascaded formant
  resonances moving between vowel targets, syllable rhythm, fricatives, plosives and nasals),
  babble, melodies, chords and percussion (harmonic and inharmonic instruments), bird song,
  animal calls and insects (harmonic sweeps, trills, repeated syllables), impacts and ringing
  objects (modal synthesis), and rain, wind, water and crowd textures; over a background that
  is stationary noise, a music bed, babble, or one of the textures.

The heavy kinds work in the short-time Fourier domain (`_stft`/`_istft`: a time-varying
filter is a product there), or as wavetables read by a phase accumulator, or as sums of
exponentially decaying complex exponentials; there are no sample-by-sample loops.
"""
import dataclasses
from typing import Callable, Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np

Synth = Callable[[int, np.random.Generator, int], np.ndarray]
Span = Tuple[int, int]

_F32 = np.float32


# --------------------------------------------------------------------------
# The classic kinds (unchanged: the default data depends on every draw they make).


def _envelope(n: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
  """Attack-decay envelope [n] with a random attack (2-80 ms) and decay shape."""
  t = np.arange(n) / sample_rate
  attack = rng.uniform(0.002, 0.08)
  decay = rng.uniform(0.1, 2.0) * n / sample_rate
  env = np.minimum(t / attack, 1.0) * np.exp(-np.maximum(t - attack, 0.0) / decay)
  # A short release avoids a step at the end of the event.
  release = min(n, int(0.01 * sample_rate))
  env[n - release:] *= np.linspace(1.0, 0.0, release)
  return env


def _bandpass_noise(n: int, rng: np.random.Generator, sample_rate: int, low: float,
                    high: float) -> np.ndarray:
  """White noise restricted to [low, high] Hz by an FFT mask with soft edges."""
  spectrum = np.fft.rfft(rng.standard_normal(n))
  freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
  width = max(0.1 * (high - low), 20.0)
  # Logistic edges via tanh, which cannot overflow far from the band.
  mask = 0.25 * (1 + np.tanh(2 * (freqs - low) / width)) * (1 - np.tanh(2 * (freqs - high) / width))
  return np.fft.irfft(spectrum * mask, n)


def _events(n: int, rng: np.random.Generator, sample_rate: int, count: Tuple[int, int],
            duration: Tuple[float, float]) -> List[Span]:
  """Random (start, length) spans inside [0, n), each at least 50 ms long."""
  spans = []
  for _ in range(rng.integers(count[0], count[1] + 1)):
    length = int(rng.uniform(*duration) * sample_rate)
    length = int(np.clip(length, int(0.05 * sample_rate), n))
    start = int(rng.integers(0, n - length + 1))
    spans.append((start, length))
  return spans


def _harmonic_tone(n, rng, sample_rate):
  out = np.zeros(n)
  for start, length in _events(n, rng, sample_rate, (1, 4), (0.3, 2.5)):
    t = np.arange(length) / sample_rate
    f0 = np.exp(rng.uniform(np.log(80), np.log(1000)))
    vibrato = 1 + rng.uniform(0, 0.01) * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
    phase = 2 * np.pi * f0 * np.cumsum(vibrato) / sample_rate
    num_harmonics = max(1, min(12, int(0.45 * sample_rate / f0)))
    k = np.arange(1, num_harmonics + 1)[:, None]
    amplitudes = k[:, 0] ** -rng.uniform(0.5, 2.0)
    tone = amplitudes @ np.sin(k * phase[None, :])
    out[start:start + length] += tone * _envelope(length, rng, sample_rate)
  return out


def _chirp(n, rng, sample_rate):
  out = np.zeros(n)
  for start, length in _events(n, rng, sample_rate, (1, 3), (0.2, 1.5)):
    f_start, f_end = np.exp(rng.uniform(np.log(150), np.log(0.4 * sample_rate), size=2))
    freq = f_start * (f_end / f_start) ** np.linspace(0, 1, length)
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    sweep = np.sin(phase) + rng.uniform(0, 0.5) * np.sin(2 * phase) * (2 * freq < sample_rate / 2)
    env = np.sin(np.pi * np.linspace(0, 1, length)) ** rng.uniform(0.3, 1.0)
    out[start:start + length] += sweep * env
  return out


def _noise_burst(n, rng, sample_rate):
  out = np.zeros(n)
  for start, length in _events(n, rng, sample_rate, (1, 4), (0.1, 1.0)):
    centre = np.exp(rng.uniform(np.log(200), np.log(0.35 * sample_rate)))
    bandwidth = centre * rng.uniform(0.1, 1.0)
    low, high = max(centre - bandwidth / 2, 20.0), min(centre + bandwidth / 2,
                                                       0.48 * sample_rate)
    burst = _bandpass_noise(length, rng, sample_rate, low, high)
    out[start:start + length] += burst / (np.std(burst) + 1e-9) * _envelope(
        length, rng, sample_rate)
  return out


def _click_train(n, rng, sample_rate):
  """Impulses (regular or random) exciting a damped resonance."""
  out = np.zeros(n)
  for start, length in _events(n, rng, sample_rate, (1, 2), (0.5, 3.0)):
    rate = rng.uniform(2, 25)
    if rng.random() < 0.5:
      times = np.arange(0, length, sample_rate / rate).astype(int)
    else:
      times = np.sort(rng.integers(0, length, size=max(1, int(rate * length / sample_rate))))
    impulses = np.zeros(length)
    np.add.at(impulses, times, rng.uniform(0.5, 1.0, size=times.size) * rng.choice([-1, 1],
                                                                                   times.size))
    ring = int(rng.uniform(0.003, 0.03) * sample_rate)
    tr = np.arange(ring) / sample_rate
    resonance = np.exp(-tr / (ring / sample_rate / 5)) * np.sin(
        2 * np.pi * rng.uniform(500, 0.4 * sample_rate) * tr)
    resonance[0] = 1.0
    out[start:start + length] += np.convolve(impulses, resonance)[:length]
  return out


def _am_fm_texture(n, rng, sample_rate):
  out = np.zeros(n)
  for start, length in _events(n, rng, sample_rate, (1, 2), (1.0, 5.0)):
    t = np.arange(length) / sample_rate
    carrier = np.exp(rng.uniform(np.log(200), np.log(0.3 * sample_rate)))
    fm_rate, fm_depth = rng.uniform(0.5, 12), rng.uniform(0.01, 0.2) * carrier
    am_rate, am_depth = rng.uniform(2, 40), rng.uniform(0.3, 1.0)
    freq = carrier + fm_depth * np.sin(2 * np.pi * fm_rate * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    am = 1 - am_depth * 0.5 * (1 + np.sin(2 * np.pi * am_rate * t))
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.05)
    out[start:start + length] += np.sin(phase) * am * fade
  return out


def _stationary_background(n, rng, sample_rate):
  """Coloured noise (1/f^beta, beta in [0, 2]), sometimes with a hum."""
  spectrum = np.fft.rfft(rng.standard_normal(n))
  freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
  beta = rng.uniform(0.0, 2.0)
  shape = 1.0 / np.maximum(freqs, 20.0) ** (beta / 2)
  noise = np.fft.irfft(spectrum * shape, n)
  noise /= np.std(noise) + 1e-12
  if rng.random() < 0.3:
    t = np.arange(n) / sample_rate
    hum = rng.uniform(40, 120)
    noise += rng.uniform(0.2, 1.0) * sum(np.sin(2 * np.pi * k * hum * t) / k for k in (1, 2, 3))
  return noise


# --------------------------------------------------------------------------
# Shared machinery of the other kinds.


def _stft_size(sample_rate: int) -> Tuple[int, int]:
  """(FFT size about 32 ms, hop half of it) at `sample_rate`."""
  nfft = max(64, 1 << int(round(np.log2(0.032 * sample_rate))))
  return nfft, nfft // 2


def _window(nfft: int) -> np.ndarray:
  """The square root of a periodic Hann window: squared, its copies at half hops add to 1."""
  return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(nfft) / nfft)).astype(_F32)


def _num_frames(length: int, nfft: int, hop: int) -> int:
  return -(-(length + nfft - hop) // hop)


def _frame_times(length: int, sample_rate: int) -> np.ndarray:
  """The centre (s) of each STFT frame of a `length`-sample signal."""
  nfft, hop = _stft_size(sample_rate)
  frames = _num_frames(length, nfft, hop)
  return (np.arange(frames) * hop - (nfft - hop) + nfft / 2) / sample_rate


def _stft(x: np.ndarray, sample_rate: int) -> np.ndarray:
  """Windowed STFT [..., frames, bins] of x [..., length] (frames as `_frame_times`)."""
  nfft, hop = _stft_size(sample_rate)
  length = x.shape[-1]
  frames = _num_frames(length, nfft, hop)
  padded = np.zeros(x.shape[:-1] + ((frames - 1) * hop + nfft,), _F32)
  padded[..., nfft - hop:nfft - hop + length] = x
  view = np.lib.stride_tricks.sliding_window_view(padded, nfft, axis=-1)[..., ::hop, :]
  # numpy's float64 FFT is several times faster than its float32 one.
  return np.fft.rfft(view * _window(nfft).astype(np.float64), axis=-1).astype(np.complex64)


def _istft(spectrum: np.ndarray, length: int, sample_rate: int) -> np.ndarray:
  """Weighted overlap-add inverse of `_stft` for [frames, bins]: float32 [length]."""
  nfft, hop = _stft_size(sample_rate)
  frames = spectrum.shape[0]
  ratio = nfft // hop
  blocks = (np.fft.irfft(spectrum, nfft, axis=-1) * _window(nfft)).astype(_F32)
  blocks = blocks.reshape(frames, ratio, hop)
  out = np.zeros((frames + ratio - 1, hop), _F32)
  for r in range(ratio):
    out[r:r + frames] += blocks[:, r]
  return out.ravel()[nfft - hop:nfft - hop + length]


def _complex_noise(rng: np.random.Generator, shape: Tuple[int, ...]) -> np.ndarray:
  parts = rng.standard_normal((2,) + shape, dtype=_F32)
  return parts[0] + 1j * parts[1]


def _shaped_noise(length: int, rng: np.random.Generator, sample_rate: int,
                  shape: np.ndarray) -> np.ndarray:
  """Noise whose short-time magnitude spectrum is `shape` [frames, bins] (a time-varying
  filter): complex Gaussian STFT frames times the shape, overlap-added."""
  return _istft(_complex_noise(rng, shape.shape) * shape, length, sample_rate)


def _bins(sample_rate: int) -> np.ndarray:
  nfft, _ = _stft_size(sample_rate)
  return np.fft.rfftfreq(nfft, 1.0 / sample_rate).astype(_F32)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
  """x [..., T] smoothed along the last axis by a Hann window of `width` points (at most T)."""
  width = min(width, x.shape[-1])
  if width < 2:
    return x
  kernel = np.hanning(width + 2)[1:-1]
  kernel /= kernel.sum()
  flat = x.reshape(-1, x.shape[-1])
  out = np.stack([np.convolve(row, kernel, mode='same') for row in flat])
  return out.reshape(x.shape)


def _random_walk(num: int, rng: np.random.Generator, width: int) -> np.ndarray:
  """A smooth random curve [num]: white noise through a Hann window of `width` points of unit
  energy, so of zero mean and unit variance at every point (over a span much shorter than
  `width` it is nearly constant)."""
  width = max(2, width)
  kernel = np.hanning(width + 2)[1:-1]
  kernel /= np.sqrt(np.sum(kernel ** 2))
  return np.convolve(rng.standard_normal(num + width - 1), kernel, mode='valid')


def _fades(length: int, sample_rate: int, seconds: float) -> np.ndarray:
  """An envelope [length] rising over the first and falling over the last `seconds`."""
  ramp = max(1, min(int(seconds * sample_rate), length // 2))
  env = np.ones(length, _F32)
  rise = (0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)).astype(_F32)
  env[:ramp] = rise
  env[length - ramp:] = np.minimum(env[length - ramp:], rise[::-1])
  return env


def _ramps(length: int, sample_rate: int, seconds: float) -> np.ndarray:
  """`_fades` of at most a third of the length: an onset and an end without clicks."""
  return _fades(length, sample_rate, min(seconds, length / 3 / sample_rate))


def _modes(length: int, sample_rate: int, freqs: np.ndarray, decays: np.ndarray,
           amps: np.ndarray) -> np.ndarray:
  """Modal synthesis: sum_k amps_k exp(-t / decays_k) sin(2 pi freqs_k t), float32 [length]."""
  keep = freqs < 0.45 * sample_rate
  freqs, decays, amps = freqs[keep], decays[keep], amps[keep]
  if not freqs.size:
    return np.zeros(length, _F32)
  # Only as long as the slowest mode needs to fall by 70 dB.
  active = int(min(length, np.ceil(8.0 * decays.max() * sample_rate)))
  # exp(p t) at t = (m B + b) / rate is exp(p m B / rate) exp(p b / rate): a complex matrix
  # product [blocks, modes] x [modes, B] instead of an exponential per mode and sample (by
  # einsum's own loops: a threaded BLAS call this small is slower on a busy machine).
  block = 256
  blocks = -(-active // block)
  poles = (-1.0 / decays + 2j * np.pi * freqs) / sample_rate
  within = np.exp(poles[:, None] * np.arange(block)[None, :])
  starts = np.exp(poles[None, :] * (np.arange(blocks) * block)[:, None]) * amps[None, :]
  out = np.zeros(length, _F32)
  out[:active] = np.einsum('mk,kb->mb', starts, within).imag.ravel()[:active]
  return out


def _wavetable(amplitudes: np.ndarray, size: int = 2048) -> np.ndarray:
  """One period [size] of sum_k amplitudes[k-1] sin(2 pi k x)."""
  spectrum = np.zeros(size // 2 + 1, np.complex128)
  spectrum[1:amplitudes.size + 1] = -0.5j * size * amplitudes
  return np.fft.irfft(spectrum, size).astype(_F32)


def _read_table(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
  """The wavetable read at `cycles` (phase in periods), by linear interpolation."""
  mask = table.size - 1  # a power of two
  position = cycles * table.size
  whole = np.floor(position)
  frac = (position - whole).astype(_F32)
  index = whole.astype(np.int64) & mask
  low = table[index]
  return low + frac * (table[(index + 1) & mask] - low)


def _bandlimited(amplitudes: np.ndarray, f_max: float, sample_rate: int) -> np.ndarray:
  """The harmonic amplitudes below 0.45 x the sample rate at fundamental f_max."""
  count = max(1, min(amplitudes.size, int(0.45 * sample_rate / max(f_max, 1.0))))
  return amplitudes[:count]


def _cycles(freq: np.ndarray, sample_rate: int) -> np.ndarray:
  """Phase (periods) of an oscillator of instantaneous frequency `freq` [..., T] Hz."""
  return np.cumsum(freq / sample_rate, axis=-1, dtype=np.float64)


def _place(length: int, pieces: Sequence[Tuple[int, np.ndarray]]) -> np.ndarray:
  """Adds (start, signal) pieces into zeros [length], cutting what runs past the end."""
  out = np.zeros(length, _F32)
  for start, piece in pieces:
    if 0 <= start < length:
      end = min(length, start + piece.size)
      out[start:end] += piece[:end - start]
  return out


def _grains(length: int, starts: np.ndarray, grains: np.ndarray) -> np.ndarray:
  """Overlap-adds grains [M, G] at sample offsets starts [M] into [length] (cut at the end)."""
  if not starts.size:
    return np.zeros(length, _F32)
  index = starts[:, None] + np.arange(grains.shape[1])[None, :]
  inside = index < length
  return np.bincount(index[inside], weights=grains[inside], minlength=length)[:length].astype(
      _F32)


def _hz(midi: np.ndarray) -> np.ndarray:
  return 440.0 * 2.0 ** ((np.asarray(midi, np.float64) - 69.0) / 12.0)


# --------------------------------------------------------------------------
# Speech-like voices: a source-filter model.

# Peterson & Barney's (1952) adult male formants F1-F3 (Hz) of ten American English vowels.
_VOWELS = np.array([[270, 2290, 3010], [390, 1990, 2550], [530, 1840, 2480],
                    [660, 1720, 2410], [730, 1090, 2440], [570, 840, 2410],
                    [440, 1020, 2240], [300, 870, 2240], [640, 1190, 2390],
                    [490, 1350, 1690]], np.float64)
_BANDWIDTHS = np.array([70.0, 100.0, 140.0, 220.0, 300.0])
# Voice types: (share, median f0 range (Hz), formant scale).
_SPEAKERS = ((0.42, (85.0, 155.0), 1.0), (0.42, (165.0, 255.0), 1.16),
             (0.16, (240.0, 380.0), 1.3))
# Segment fields: duration (s), voicing gain, frication gain, frication centre (Hz, 0 for
# aspiration shaped by the formants), frication width (Hz), formant targets (F1-F3 at the male
# scale, or NaN: interpolated from the neighbours), pitch accent.
_SEGMENT_FIELDS = 9


def _fricative(rng: np.random.Generator, sample_rate: int) -> Tuple[float, float]:
  """(centre, width) Hz of a random fricative's noise: /s/, /sh/, /f/ or /h/ (centre 0)."""
  nyquist = 0.5 * sample_rate
  choice = rng.integers(4)
  if choice == 0:  # /s/
    return min(rng.uniform(4500, 7000), 0.8 * nyquist), rng.uniform(800, 2000)
  if choice == 1:  # /sh/
    return min(rng.uniform(2200, 3500), 0.7 * nyquist), rng.uniform(500, 1100)
  if choice == 2:  # /f/, /th/: broad
    return min(rng.uniform(3000, 6000), 0.7 * nyquist), rng.uniform(2000, 4000)
  return 0.0, 0.0


def _utterance_plan(seconds: float, rng: np.random.Generator, sample_rate: int, offset: float,
                    rate: float) -> np.ndarray:
  """A voice's segments [num, _SEGMENT_FIELDS] filling `seconds`, starting after `offset`."""
  nan = float('nan')
  rows = [[offset, 0, 0, 0, 0, nan, nan, nan, 0]]
  t, vowels = offset, 0
  while True:
    stress = rng.random() < 0.35
    vowel_seconds = rng.uniform(0.06, 0.16) * (1.5 if stress else 1.0) * 5.0 / rate
    syllable = []
    onset = rng.random()
    if onset < 0.25:
      centre, width = _fricative(rng, sample_rate)
      syllable.append([rng.uniform(0.05, 0.12), 0, rng.uniform(0.3, 0.8), centre, width,
                       nan, nan, nan, 0])
    elif onset < 0.5:  # a plosive: closure, burst, then voicing
      syllable.append([rng.uniform(0.02, 0.06), 0, 0, 0, 0, nan, nan, nan, 0])
      syllable.append([rng.uniform(0.008, 0.02), 0, rng.uniform(0.5, 1.0),
                       min(rng.uniform(1200, 4000), 0.4 * sample_rate), 2500, nan, nan, nan, 0])
    elif onset < 0.65:  # a nasal murmur
      syllable.append([rng.uniform(0.04, 0.09), 0.3, 0, 0, 0, 260, rng.uniform(900, 1600),
                       2300, 0])
    elif onset < 0.72:
      syllable.append([rng.uniform(0.04, 0.08), 0, 0.3, 0, 0, nan, nan, nan, 0])
    vowel = _VOWELS[rng.integers(len(_VOWELS))]
    syllable.append([vowel_seconds, rng.uniform(0.6, 1.0), 0, 0, 0, *vowel,
                     rng.uniform(0.05, 0.25) if stress else 0.0])
    if rng.random() < 0.3:  # a coda
      if rng.random() < 0.5:
        centre, width = _fricative(rng, sample_rate)
        syllable.append([rng.uniform(0.05, 0.1), 0, rng.uniform(0.3, 0.7), centre, width,
                         nan, nan, nan, 0])
      else:
        syllable.append([rng.uniform(0.04, 0.08), 0.3, 0, 0, 0, 260,
                         rng.uniform(900, 1600), 2300, 0])
    length = sum(row[0] for row in syllable)
    if t + length > seconds:
      break
    rows.extend(syllable)
    t += length
    vowels += 1
    if rng.random() < 0.2:  # a word or phrase break
      pause = rng.uniform(0.08, 0.35)
      rows.append([pause, 0, 0, 0, 0, nan, nan, nan, 0])
      t += pause
  if not vowels:  # too short for a syllable: one vowel fills it
    rows.append([max(seconds - offset, 0.02), 1.0, 0, 0, 0,
                 *_VOWELS[rng.integers(len(_VOWELS))], 0.1])
  return np.array(rows, np.float64)


def _voice_controls(plan: np.ndarray, times: np.ndarray, rng: np.random.Generator,
                    sample_rate: int):
  """Frame-rate controls of one planned voice at frame times [F]: (voicing [F], frication
  [F], frication centre [F], width [F], aspiration-shaped [F], formants [F, 5], f0 [F])."""
  ends = np.cumsum(plan[:, 0])
  starts = ends - plan[:, 0]
  index = np.searchsorted(ends, times, side='right')
  past = index >= len(plan)
  index = np.minimum(index, len(plan) - 1)
  frame_seconds = times[1] - times[0] if times.size > 1 else 0.01
  width = max(2, int(round(0.02 / frame_seconds)))
  voicing = _smooth(np.where(past, 0.0, plan[index, 1]), width)
  frication = _smooth(np.where(past, 0.0, plan[index, 2]), max(2, width // 2))
  centre, fwidth = plan[index, 3], plan[index, 4]
  aspiration = (centre == 0).astype(np.float64)

  speaker = _SPEAKERS[rng.choice(3, p=[s[0] for s in _SPEAKERS])]
  scale = speaker[2] * rng.uniform(0.94, 1.06)
  targets = ~np.isnan(plan[:, 5])
  mids = (starts + ends)[targets] / 2
  formants = np.empty((times.size, 5))
  for k in range(3):
    formants[:, k] = np.interp(times, mids, plan[targets, 5 + k]) * scale
  formants[:, 3] = 3500 * scale
  formants[:, 4] = 4500 * scale
  formants[:, :3] = _smooth(formants[:, :3].T, max(2, width)).T

  f0 = np.exp(rng.uniform(*np.log(speaker[1])))
  # Declination over each phrase (reset after a pause of 250 ms or more), pitch accents on
  # stressed vowels, a slow drift, and now and then a final rise.
  breaks = np.concatenate([[0.0], ends[(plan[:, 1] == 0) & (plan[:, 2] == 0)
                                         & (plan[:, 0] >= 0.25)]])
  since = times - breaks[np.maximum(np.searchsorted(breaks, times, side='right') - 1, 0)]
  contour = np.exp(-rng.uniform(0.05, 0.2) * since)
  accents = plan[:, 8] > 0
  if np.any(accents):
    centres = ((starts + ends) / 2)[accents]
    bumps = plan[accents, 8][:, None] * np.exp(
        -0.5 * ((times[None, :] - centres[:, None]) / 0.07) ** 2)
    contour = contour * (1 + bumps.sum(0))
  contour *= 1 + 0.03 * _random_walk(times.size, rng, max(2, int(0.15 / frame_seconds)))
  if rng.random() < 0.2:
    total = ends[-1]
    contour *= 1 + 0.3 * np.clip((times - (total - 0.3)) / 0.3, 0, 1)
  return voicing, frication, centre, fwidth, aspiration, formants, f0 * contour


def _formant_filter(formants: np.ndarray, freqs: np.ndarray) -> np.ndarray:
  """Cascade of resonances [..., F, bins]: prod_k Fk^2 / |Fk^2 - f^2 + j Bk f| at frame
  formants [..., F, 5] (unit gain at 0 Hz). The last two formants are constant per voice."""
  khz = freqs.astype(_F32) / _F32(1000)  # kHz: the products stay within float32
  f2 = khz * khz
  centres = (formants / 1000.0).astype(_F32) ** 2
  bandwidths = (_F32(1e-3) * _BANDWIDTHS.astype(_F32))[:, None] ** 2 * f2  # [5, bins]
  static = np.ones(formants.shape[:-2] + (1, freqs.size), _F32)
  for k in (3, 4):
    c = centres[..., :1, k:k + 1]
    static *= c / np.sqrt((c - f2) ** 2 + bandwidths[k])
  denominator = None
  for k in range(3):
    term = (centres[..., k:k + 1] - f2) ** 2 + bandwidths[k]
    denominator = term if denominator is None else denominator * term
  numerator = np.prod(centres[..., :3], axis=-1, keepdims=True)
  return numerator * static / np.sqrt(denominator)


def _some(frames: np.ndarray, count: int = 16) -> np.ndarray:
  """At most `count` of the frame indices `frames`, evenly spread."""
  return frames[np.linspace(0, frames.size - 1, min(count, frames.size)).astype(int)]


def _glottal_pulse(open_quotient: float, size: int = 1024) -> np.ndarray:
  """One period [size] of Rosenberg's glottal flow: a rise over 70% of the open phase, a
  fall over 30%, closed for the rest."""
  frac = np.arange(size) / size
  rise, fall = 0.7 * open_quotient, 0.3 * open_quotient
  flow = np.where(frac < rise, 0.5 - 0.5 * np.cos(np.pi * frac / rise),
                  np.where(frac < rise + fall, np.cos(0.5 * np.pi * (frac - rise) / fall), 0.0))
  return flow.astype(_F32)


def _voices(length: int, rng: np.random.Generator, sample_rate: int, count: int,
            max_offset: float, gains_db: float = 0.0, running: bool = False) -> np.ndarray:
  """`count` speech-like voices talking over `length` samples, summed: float32 [length].

  Each starts after a random offset of at most `max_offset` s, or with `running`, was
  already talking before the start (a background); their levels differ by up to
  +-`gains_db`.

  Each voice: a Rosenberg glottal pulse train (its derivative: lip radiation) with a pitch
  contour, plus aspiration noise, through five cascaded formant resonances moving between
  vowel targets; fricatives and bursts are noise bands; syllables of 3-7 per second.
  """
  seconds = length / sample_rate
  times = _frame_times(length, sample_rate)
  freqs = _bins(sample_rate)
  sample_times = np.arange(length) / sample_rate
  excitations, controls = [], []
  for _ in range(count):
    if running:  # the plan began `lead` s before the clip
      lead, offset = rng.uniform(0.0, 0.6), 0.0
    else:
      lead, offset = 0.0, rng.uniform(0.0, min(max_offset, 0.3 * seconds))
    plan = _utterance_plan(seconds + lead, rng, sample_rate, offset, rng.uniform(3.0, 7.0))
    voicing, frication, centre, fwidth, aspiration, formants, f0 = _voice_controls(
        plan, times + lead, rng, sample_rate)
    cycles = _cycles(np.interp(sample_times, times, f0), sample_rate)
    flow = _read_table(_glottal_pulse(rng.uniform(0.45, 0.7)), cycles)
    excitations.append(np.diff(flow, prepend=_F32(0)))
    gain = 10 ** (rng.uniform(-gains_db, gains_db) / 20)
    controls.append((voicing * gain, frication * gain, centre, fwidth, aspiration, formants,
                     rng.uniform(0.02, 0.12), rng.uniform(0.05, 0.2)))
  spectra = _stft(np.stack(excitations), sample_rate)  # [V, F, K]
  filters = _formant_filter(np.stack([c[5] for c in controls]), freqs)  # [V, F, K]
  voicing = np.stack([c[0] for c in controls]).astype(_F32)  # [V, F]
  frication = np.stack([c[1] for c in controls]).astype(_F32)
  if voicing.max() < 1e-3 and frication.max() < 1e-3:
    # A clip so short that it falls in a pause of every voice: the first one hums instead.
    voicing[0] = 1.0
  noise_shape = np.zeros(spectra.shape[1:], _F32)
  fricatives = []
  for v, (_, _, centre, width, aspiration, _, breath, level) in enumerate(controls):
    # The voice's level: its mean voiced frame power where it is fully voiced (from a few
    # frames); aspiration and frication are set against it.
    some = _some(np.flatnonzero(voicing[v] > 0.5 * voicing[v].max()))
    if not voicing[v].max() > 0:  # never voiced here: the excitation through the filter
      some = _some(np.arange(voicing.shape[1]))
    reference = np.mean(np.sum(np.abs(spectra[v, some] * filters[v, some]) ** 2, -1))
    filter_power = 2 * np.mean(np.sum(filters[v, some] ** 2, -1)) + 1e-12  # E|noise|^2 = 2
    noise_shape += filters[v] * (voicing[v] * np.sqrt(breath * reference / filter_power))[:, None]
    frames = np.flatnonzero(frication[v] > 1e-4)
    if frames.size:
      band = np.exp(-0.5 * ((freqs - centre[frames, None]) / np.maximum(width[frames, None], 1.0))
                    ** 2)
      shape = np.where(aspiration[frames, None] > 0, filters[v, frames], band).astype(_F32)
      power = 2 * np.sum(shape ** 2, -1) + 1e-12
      gain = frication[v, frames] * np.sqrt(level * reference / power)
      fricatives.append((frames, shape * gain[:, None].astype(_F32)))
  for frames, shape in fricatives:
    noise_shape[frames] += shape
  # One noise field for all voices: their noise shapes add in amplitude, not power, which
  # only matters where two voices' noises overlap.
  total = np.einsum('vfk,vfk->fk', spectra, filters * voicing[..., None]) + _complex_noise(
      rng, noise_shape.shape) * noise_shape
  return _istft(total, length, sample_rate) * _fades(length, sample_rate, 0.01)


def _speech_event(length, rng, sample_rate):
  return _voices(length, rng, sample_rate, 1, 0.05)


def _babble_event(length, rng, sample_rate):
  return _voices(length, rng, sample_rate, int(rng.integers(3, 6)), 0.5, 4.0)


def _babble_background(n, rng, sample_rate):
  return _voices(n, rng, sample_rate, int(rng.integers(4, 8)), 0.0, 6.0, running=True)


# --------------------------------------------------------------------------
# Music: notes of harmonic and inharmonic instruments, melodies, chords, percussion.

_SCALES = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10), (0, 2, 4, 7, 9), (0, 3, 5, 7, 10),
           (0, 2, 3, 5, 7, 9, 10))
# Partial ratios of inharmonic instruments: marimba-, vibraphone-, glockenspiel-like bars, a
# church bell (hum, prime, tierce, quint, nominal, ...).
_INHARMONIC = ((1.0, 3.93, 9.2), (1.0, 4.0, 10.1), (1.0, 2.76, 5.40, 8.93),
               (0.5, 1.0, 1.19, 1.5, 2.0, 2.52, 2.66, 3.0, 4.1))
_INSTRUMENTS = ('plucked', 'piano', 'mallet', 'bell', 'organ', 'strings', 'reed', 'brass',
                'flute')


@dataclasses.dataclass
class _Instrument:
  kind: str
  tilt: float  # harmonic amplitude ~ k^-tilt
  decay: float  # s, of the first partial (modal instruments)
  stretch: float  # piano inharmonicity B
  ratios: Tuple[float, ...]
  attack: float
  release: float
  vibrato: float
  organ: np.ndarray

  @property
  def modal(self) -> bool:
    return self.kind in ('plucked', 'piano', 'mallet', 'bell')


def _instrument(rng: np.random.Generator, kinds: Sequence[str] = _INSTRUMENTS) -> _Instrument:
  kind = kinds[rng.integers(len(kinds))]
  decay = {'plucked': (0.3, 1.2), 'piano': (0.8, 2.0), 'mallet': (0.2, 0.7),
           'bell': (0.8, 2.5)}.get(kind, (1.0, 1.0))
  organ = np.zeros(8)  # drawbars: the fundamental and two to four other harmonics
  stops = rng.choice(np.arange(1, 8), size=int(rng.integers(2, 5)), replace=False)
  organ[stops] = rng.uniform(0.2, 0.8, stops.size)
  organ[0] = 1.0
  return _Instrument(
      kind=kind, tilt=rng.uniform(0.7, 1.8), decay=rng.uniform(*decay),
      stretch=rng.uniform(1e-4, 8e-4) if kind == 'piano' else 0.0,
      ratios=_INHARMONIC[rng.integers(3) if kind == 'mallet' else 3],
      attack=rng.uniform(0.01, 0.12) if kind in ('strings', 'brass', 'flute') else 0.005,
      release=rng.uniform(0.05, 0.3), vibrato=rng.uniform(0.0, 0.006), organ=organ)


def _note(instrument: _Instrument, f0: float, length: int, rng: np.random.Generator,
          sample_rate: int, max_partials: int = 12) -> np.ndarray:
  """One note of `length` samples (its release included): float32 [length]."""
  if instrument.modal:
    if instrument.kind in ('mallet', 'bell'):
      ratios = np.array(instrument.ratios)
      decays = instrument.decay / ratios ** 0.6
    else:
      k = np.arange(1, max_partials + 1, dtype=np.float64)
      ratios = k * np.sqrt(1 + instrument.stretch * k ** 2)
      decays = instrument.decay / k ** 0.7
    amps = ratios ** -instrument.tilt * rng.uniform(0.6, 1.0, ratios.size)
    note = _modes(length, sample_rate, f0 * ratios, decays, amps)
    # The hammer, pick or mallet: a short soft onset.
    onset = max(1, int(0.002 * sample_rate))
    note[:onset] *= np.linspace(0, 1, onset, dtype=_F32)
  else:
    kind = instrument.kind
    k = np.arange(1, max_partials + 1, dtype=np.float64)
    if kind == 'organ':
      amps = instrument.organ
    elif kind == 'reed':  # odd harmonics strong (clarinet-like)
      amps = k ** -instrument.tilt * np.where(k % 2 == 1, 1.0, 0.15)
    elif kind == 'flute':
      amps = k ** -2.5
    else:
      amps = k ** -instrument.tilt
    t = np.arange(length, dtype=_F32) / _F32(sample_rate)
    freq = f0 * (1 + instrument.vibrato * np.sin(2 * np.pi * rng.uniform(4.5, 6.5) * t))
    table = _wavetable(_bandlimited(amps, f0 * 1.02, sample_rate))
    note = _read_table(table, _cycles(freq, sample_rate) + rng.random())
    attack = max(1, int(instrument.attack * sample_rate))
    env = np.minimum(1.0, np.arange(length, dtype=_F32) / attack)
    if kind == 'brass':  # brightness grows through the attack
      dull = _read_table(_wavetable(amps[:2]), _cycles(freq, sample_rate))
      note = env * note + (1 - env) * dull
    note = note * env
    if kind == 'flute':
      note = note + 0.008 * rng.standard_normal(length).astype(_F32) * env
  release = max(1, min(length, int(instrument.release * sample_rate)))
  note[length - release:] *= np.linspace(1, 0, release, dtype=_F32) ** 2
  return note


def _key(rng: np.random.Generator) -> Tuple[int, Tuple[int, ...]]:
  return int(rng.integers(0, 12)), _SCALES[rng.integers(len(_SCALES))]


def _scale_midi(root: int, scale: Tuple[int, ...], degree: np.ndarray, base: int) -> np.ndarray:
  degree = np.asarray(degree)
  octave, step = np.divmod(degree, len(scale))
  return base + root + 12 * octave + np.array(scale)[step]


def _melody(length, rng, sample_rate, instrument=None, register=(57, 76)):
  """A phrase: notes of one instrument stepping through a scale on a beat grid."""
  instrument = instrument or _instrument(rng)
  root, scale = _key(rng)
  beat = 60.0 / rng.uniform(70, 160)
  base = int(rng.integers(*register)) - root
  degree = int(rng.integers(0, len(scale)))
  pieces, t = [], rng.uniform(0.0, 0.05)
  seconds = length / sample_rate
  while t < seconds - 0.08:
    step = rng.choice([-2, -1, -1, 0, 1, 1, 2, rng.integers(-5, 6)])
    degree = int(np.clip(degree + step, -len(scale), 2 * len(scale)))
    duration = beat * rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0])
    if rng.random() < 0.85:
      f0 = min(_hz(_scale_midi(root, scale, degree, base)), 0.2 * sample_rate)
      sound = int(min(duration * rng.uniform(0.8, 1.3) + instrument.release,
                      seconds - t) * sample_rate)
      if sound > 0:
        pieces.append((int(t * sample_rate),
                       _note(instrument, f0, sound, rng, sample_rate) * rng.uniform(0.6, 1.0)))
    t += duration
  if not pieces:
    f0 = _hz(base + root + 12)
    pieces.append((0, _note(instrument, f0, length, rng, sample_rate)))
  return _place(length, pieces) * _fades(length, sample_rate, 0.005)


def _chord_notes(rng: np.random.Generator, root: int, scale: Tuple[int, ...], degree: int,
                 base: int) -> np.ndarray:
  """MIDI notes of a triad or seventh on a scale degree (stacked thirds)."""
  size = 3 if rng.random() < 0.7 else 4
  return _scale_midi(root, scale, degree + 2 * np.arange(size), base)


def _chords(length, rng, sample_rate, instrument=None, bass=False):
  """A progression of 2-4 chords per bar-ish span, strummed or held, with an optional bass."""
  instrument = instrument or _instrument(rng)
  root, scale = _key(rng)
  base = int(rng.integers(48, 60)) - root
  seconds = length / sample_rate
  hold = rng.uniform(0.4, 1.2)
  strum = rng.uniform(0.005, 0.03) if instrument.modal else 0.0
  bass_instrument = _instrument(rng, ('plucked', 'organ', 'strings')) if bass else None
  pieces, t = [], 0.0
  while True:  # at least one chord
    degree = int(rng.integers(0, len(scale)))
    notes = _chord_notes(rng, root, scale, degree, base)
    sound = int(min(hold + instrument.release, seconds - t) * sample_rate)
    for i, midi in enumerate(notes):
      f0 = min(_hz(midi), 0.2 * sample_rate)
      start = int((t + i * strum) * sample_rate)
      pieces.append((start, _note(instrument, f0, sound, rng, sample_rate, 8)
                     * rng.uniform(0.5, 1.0)))
    if bass_instrument is not None:
      f0 = _hz(_scale_midi(root, scale, degree, base - 24))
      pieces.append((int(t * sample_rate),
                     _note(bass_instrument, f0, sound, rng, sample_rate, 8) * 1.5))
    t += hold
    if t >= seconds - 0.05:
      break
  return _place(length, pieces) * _fades(length, sample_rate, 0.005)


def _drum_sound(kind: str, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
  """One hit of a drum-kit piece or a hand drum: float32 samples."""
  if kind in ('kick', 'tom'):
    seconds = rng.uniform(0.15, 0.4)
    t = np.arange(int(seconds * sample_rate), dtype=_F32) / _F32(sample_rate)
    low = rng.uniform(40, 65) if kind == 'kick' else rng.uniform(80, 250)
    freq = low * (1 + rng.uniform(1, 3) * np.exp(-t / rng.uniform(0.01, 0.04)))
    tone = np.sin(2 * np.pi * _cycles(freq, sample_rate)).astype(_F32)
    return tone * np.exp(-t / (seconds / 4))
  if kind == 'hand':  # a circular membrane's first modes
    f0 = rng.uniform(90, 400)
    ratios = np.array([1.0, 1.59, 2.14, 2.30, 2.65, 2.92])
    decay = rng.uniform(0.05, 0.25)
    return _modes(int(decay * 6 * sample_rate), sample_rate, f0 * ratios, decay / ratios,
                  rng.uniform(0.3, 1.0, ratios.size))
  seconds = {'snare': rng.uniform(0.1, 0.25), 'hat': rng.uniform(0.03, 0.1),
             'open_hat': rng.uniform(0.2, 0.45), 'clap': rng.uniform(0.08, 0.15),
             'shaker': rng.uniform(0.05, 0.1)}[kind]
  size = int(seconds * sample_rate)
  t = np.arange(size, dtype=_F32) / _F32(sample_rate)
  noise = rng.standard_normal(size).astype(_F32)
  if kind in ('hat', 'open_hat', 'shaker'):
    noise = np.diff(noise, 2, prepend=_F32(0), append=_F32(0))[:size]  # bright
  env = np.exp(-t / (seconds / 4)).astype(_F32)
  if kind == 'clap':  # three or four quick bursts
    env = env * (1 + sum(np.exp(-np.maximum(t - d, 0) / 0.004) * (t >= d)
                         for d in (0.0, 0.011, 0.023)))
  if kind == 'shaker':
    env = np.sin(np.pi * t / seconds) ** 2
  hit = noise * env
  if kind == 'snare':
    f = rng.uniform(160, 260)
    hit = 0.7 * hit + np.sin(2 * np.pi * f * t) * np.exp(-t / 0.03)
  return hit.astype(_F32)


def _percussion(length, rng, sample_rate):
  """A rhythm on a 16th-note grid: a drum kit (kick, snare, hats, toms, claps) or hand drums."""
  step = 60.0 / rng.uniform(80, 170) / 4
  steps = max(1, int(length / sample_rate / step))
  grid = np.arange(steps)
  if rng.random() < 0.7:
    parts = {
        'kick': (grid % 8 == 0) | (rng.random(steps) < 0.08),
        'snare': grid % 8 == 4,
        rng.choice(['hat', 'shaker']): (grid % 2 == 0) | (rng.random(steps) < 0.3),
    }
    if rng.random() < 0.3:
      parts['open_hat'] = (grid % 16 == 14)
    if rng.random() < 0.3:
      parts['clap'] = grid % 8 == 4
    if rng.random() < 0.3:
      parts['tom'] = (grid >= steps - 4) & (rng.random(steps) < 0.7)
    parts = {name: hits & (rng.random(steps) < rng.uniform(0.8, 1.0))
             for name, hits in parts.items()}
  else:
    parts = {f'hand{i}': rng.random(steps) < rng.uniform(0.2, 0.6) for i in range(2)}
  pieces = []
  for name, hits in parts.items():
    sound = _drum_sound('hand' if name.startswith('hand') else name, rng, sample_rate)
    sound = sound / (np.max(np.abs(sound)) + 1e-9)
    swing = rng.uniform(0, 0.1) * step
    for index in np.flatnonzero(hits):
      start = int((index * step + (swing if index % 2 else 0.0)) * sample_rate)
      pieces.append((start, sound * rng.uniform(0.5, 1.0)))
  if not pieces:
    pieces.append((0, _drum_sound('kick', rng, sample_rate)))
  return _place(length, pieces) * _fades(length, sample_rate, 0.003)


def _music_background(n, rng, sample_rate):
  """A music bed over the whole clip: chords with a bass line, often drums or a melody."""
  out = _chords(n, rng, sample_rate, _instrument(rng, ('organ', 'strings', 'piano', 'plucked')),
                bass=True)
  out /= np.std(out) + 1e-9
  if rng.random() < 0.5:
    drums = _percussion(n, rng, sample_rate)
    out += drums / (np.std(drums) + 1e-9) * rng.uniform(0.3, 0.8)
  if rng.random() < 0.4:
    melody = _melody(n, rng, sample_rate, register=(64, 80))
    out += melody / (np.std(melody) + 1e-9) * rng.uniform(0.4, 0.9)
  return out


# --------------------------------------------------------------------------
# Animal-like calls.


def _tone(freq: np.ndarray, amp: np.ndarray, harmonics: np.ndarray, sample_rate: int,
          phase: float = 0.0) -> np.ndarray:
  """A harmonic tone of instantaneous frequency freq [T] and envelope amp [T], its harmonic
  amplitudes cut at 0.45 x the sample rate at the highest frequency."""
  table = _wavetable(_bandlimited(harmonics, float(np.max(freq)), sample_rate))
  return _read_table(table, _cycles(freq, sample_rate) + phase) * amp


def _bird_song(length, rng, sample_rate):
  """Syllables of near-pure whistles: sweeps, trills, warbles; a motif that may repeat."""
  high = min(8000.0, 0.42 * sample_rate)
  low = min(rng.uniform(1500, 3000), 0.6 * high)
  seconds = length / sample_rate
  motif = []
  for _ in range(int(rng.integers(1, 5))):
    kind = int(rng.integers(4))
    f_a, f_b = np.exp(rng.uniform(np.log(low), np.log(high), 2))
    motif.append((kind, f_a, f_b, rng.uniform(0.03, 0.18), rng.uniform(0.02, 0.09),
                  rng.uniform(12, 40), rng.uniform(20, 80), rng.uniform(0.5, 1.0)))
  freq = np.zeros(length, _F32)
  amp = np.zeros(length, _F32)
  t = rng.uniform(0.0, 0.03)
  while t < seconds:
    for kind, f_a, f_b, dur, gap, trill_rate, warble_rate, level in motif:
      n = int(dur * sample_rate)
      start = int(t * sample_rate)
      if start + n > length:
        break
      u = np.linspace(0, 1, n, dtype=_F32)
      if kind == 0:  # a sweep
        f = f_a * (f_b / f_a) ** u
        a = np.sin(np.pi * u) ** 2
      elif kind == 1:  # a trill of short down-sweeps
        notes = u * dur * trill_rate
        f = f_a * (1 + 0.15 * (1 - (notes % 1)))
        a = np.sin(np.pi * (notes % 1)) ** 2 * _ramps(n, sample_rate, 0.005)
      elif kind == 2:  # a warble
        f = np.sqrt(f_a * f_b) * (1 + 0.12 * np.sin(2 * np.pi * warble_rate * u * dur))
        a = _ramps(n, sample_rate, 0.008)
      else:  # a whistle with a slight glide
        f = f_a * (1 + 0.05 * u)
        a = _ramps(n, sample_rate, 0.01)
      freq[start:start + n] = np.minimum(f, high)
      amp[start:start + n] = a * level
      t += dur + gap
    else:
      t += rng.uniform(0.1, 0.5)  # between motifs
      continue
    break
  if not np.any(amp):  # too short for a syllable
    freq[:] = low
    amp[:] = np.sin(np.pi * np.linspace(0, 1, length, dtype=_F32))
  freq[amp == 0] = low
  return _tone(freq, amp, np.array([1.0, rng.uniform(0.0, 0.15), rng.uniform(0, 0.05)]),
               sample_rate)


def _animal_call(length, rng, sample_rate):
  """Repeated harmonic calls with pitch sweeps: howls, barks, meows, croaks, lows."""
  kind = int(rng.integers(5))
  seconds = length / sample_rate
  if kind == 0:  # a howl: long, slow rise and fall
    f0, call, gap, sweep = rng.uniform(300, 800), rng.uniform(0.6, 1.8), 0.3, 0.6
  elif kind == 1:  # barks
    f0, call, gap, sweep = rng.uniform(250, 600), rng.uniform(0.06, 0.2), rng.uniform(0.1, 0.4), 0.5
  elif kind == 2:  # a meow: rise then fall, vowel-like change
    f0, call, gap, sweep = rng.uniform(400, 900), rng.uniform(0.3, 0.9), 0.4, 0.5
  elif kind == 3:  # a croak: low, pulsed
    f0, call, gap, sweep = rng.uniform(90, 300), rng.uniform(0.1, 0.4), rng.uniform(0.1, 0.4), 0.1
  else:  # a low (cow-like)
    f0, call, gap, sweep = rng.uniform(90, 180), rng.uniform(0.6, 1.5), 0.4, 0.2
  call = min(call, seconds)
  harmonics = np.arange(1, 17, dtype=np.float64) ** -rng.uniform(0.6, 1.5)
  formant = rng.uniform(600, 2500)
  harmonics *= 1 + 3 * np.exp(-0.5 * ((np.arange(1, 17) * f0 - formant) / 400) ** 2)
  freq = np.full(length, f0, _F32)
  amp = np.zeros(length, _F32)
  t = rng.uniform(0.0, 0.03)
  n = max(2, int(call * sample_rate))
  u = np.linspace(0, 1, n, dtype=_F32)
  peak = rng.uniform(0.3, 0.7)
  contour = 1 + sweep * np.where(u < peak, u / peak, (1 - u) / (1 - peak))
  pulses = np.ones(n, _F32)
  if kind == 3:
    pulses = (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(20, 60) * u * call)) ** 2
  env = _ramps(n, sample_rate, 0.01 if kind in (1, 3) else 0.05) * pulses
  while int(t * sample_rate) + n <= length:
    start = int(t * sample_rate)
    scale = rng.uniform(0.9, 1.1)
    freq[start:start + n] = f0 * scale * contour
    amp[start:start + n] = env * rng.uniform(0.6, 1.0)
    t += call + gap * rng.uniform(0.7, 1.5)
  if not np.any(amp):
    amp[:n] = env[:length]
  out = _tone(freq, amp, harmonics, sample_rate)
  if kind == 1:  # the noisy onset of a bark
    noise = rng.standard_normal(length).astype(_F32)
    out += 0.2 * noise * amp * np.max(np.abs(out)) / (np.max(amp) + 1e-9)
  return out


def _insect(length, rng, sample_rate):
  """A cricket's pulsed chirps or a cicada's buzz, high and narrow-band."""
  t = np.arange(length, dtype=_F32) / _F32(sample_rate)
  carrier = min(rng.uniform(2500, 7000), 0.4 * sample_rate)
  if rng.random() < 0.6:  # cricket: chirps of 2-6 pulses
    pulse_rate = rng.uniform(20, 50)
    pulses = int(rng.integers(2, 7))
    period = rng.uniform(0.25, 0.9)
    within = t % period
    pulse_phase = within * pulse_rate
    env = (np.sin(np.pi * (pulse_phase % 1)) ** 2) * (pulse_phase < pulses)
    tone = np.sin(2 * np.pi * carrier * t + rng.uniform(0, 2 * np.pi))
    out = tone * env
  else:  # cicada-like buzz: a narrow noise band, amplitude-modulated fast
    band = _bandpass_noise(length, rng, sample_rate, carrier * 0.85, carrier * 1.15)
    buzz = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(80, 300) * t)
    swell = 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.2, 1.5) * t)
    out = (band * buzz * swell).astype(_F32)
  if not np.any(out):
    out = np.sin(2 * np.pi * carrier * t)
  return out * _fades(length, sample_rate, 0.01)


# --------------------------------------------------------------------------
# Impacts and resonant objects: modal synthesis.

# Materials: (lowest mode range Hz, decay range s of the lowest mode, modes).
_MATERIALS = {'wood': ((150, 900), (0.01, 0.06), (4, 8)),
              'plastic': ((300, 1500), (0.005, 0.03), (3, 6)),
              'stone': ((500, 2500), (0.004, 0.02), (4, 8)),
              'metal_dull': ((300, 2000), (0.03, 0.12), (5, 10))}
_RINGING = {'metal': ((200, 2500), (0.3, 1.5), (5, 10)),
            'glass': ((800, 4000), (0.2, 1.0), (3, 7)),
            'bar': ((300, 2000), (0.5, 2.5), (4, 4)),
            'bell': ((200, 1200), (0.8, 3.0), (9, 9))}


def _modal_object(rng: np.random.Generator, materials: Mapping[str, tuple]):
  """(mode frequencies, decays) of a random object of one of `materials`."""
  name = list(materials)[rng.integers(len(materials))]
  (f_low, f_high), (d_low, d_high), (m_low, m_high) = materials[name]
  f1, decay = rng.uniform(f_low, f_high), rng.uniform(d_low, d_high)
  count = int(rng.integers(m_low, m_high + 1))
  if name == 'bar':  # a free bar
    ratios = np.array([1.0, 2.756, 5.404, 8.933])
  elif name == 'bell':
    ratios = np.array(_INHARMONIC[3])
  else:  # a plate-like spread of inharmonic ratios
    ratios = np.concatenate([[1.0], np.sort(rng.uniform(1.3, 8.0, count - 1))])
  freqs = f1 * ratios * rng.uniform(0.99, 1.01, ratios.size)
  # Higher modes decay faster.
  decays = decay * (ratios / ratios[0]) ** -rng.uniform(0.3, 1.0)
  return freqs, decays


def _strike(length: int, rng: np.random.Generator, sample_rate: int, freqs: np.ndarray,
            decays: np.ndarray, force: float) -> np.ndarray:
  """One strike of the object: its modes, excited at a random point, plus a contact noise."""
  amps = rng.uniform(0.2, 1.0, freqs.size) / np.sqrt(np.arange(1, freqs.size + 1))
  ring = _modes(length, sample_rate, freqs, decays, amps)
  contact = min(length, max(2, int(rng.uniform(0.0005, 0.004) * sample_rate)))
  burst = rng.standard_normal(contact).astype(_F32) * np.hanning(contact).astype(_F32)
  ring[:contact] += burst * rng.uniform(0.2, 1.0) * np.max(np.abs(ring[:4 * contact]) + 1e-6)
  return ring * force


def _impact(length, rng, sample_rate):
  """Damped objects struck once or in a pattern: knocks, a bounce, footsteps."""
  freqs, decays = _modal_object(rng, _MATERIALS)
  pattern = int(rng.integers(4))
  seconds = length / sample_rate
  if pattern == 0:  # a single hit
    times, forces = [0.0], [1.0]
  elif pattern == 1:  # knocks
    gap = rng.uniform(0.1, 0.3)
    times = list(np.arange(int(rng.integers(2, 5))) * gap)
    forces = list(rng.uniform(0.7, 1.0, len(times)))
  elif pattern == 2:  # a bounce: geometric intervals and forces
    ratio = rng.uniform(0.55, 0.85)
    gap, times, forces = rng.uniform(0.15, 0.4), [0.0], [1.0]
    while gap > 0.02 and len(times) < 12:
      times.append(times[-1] + gap)
      forces.append(forces[-1] * ratio)
      gap *= ratio
  else:  # footsteps: heel and toe
    step = rng.uniform(0.35, 0.65)
    times, forces = [], []
    for k in range(int(seconds / step) + 1):
      times += [k * step, k * step + rng.uniform(0.02, 0.05)]
      forces += [1.0, rng.uniform(0.3, 0.6)]
  pieces = []
  for time, force in zip(times, forces):
    start = int(time * sample_rate)
    if start < length:
      pieces.append((start, _strike(length - start, rng, sample_rate, freqs, decays, force)))
  return _place(length, pieces) * _fades(length, sample_rate, 0.005)


def _resonant_object(length, rng, sample_rate):
  """A ringing object (metal, glass, a bar, a bell) struck one to three times."""
  freqs, decays = _modal_object(rng, _RINGING)
  pieces, t = [], 0.0
  for _ in range(int(rng.integers(1, 4))):
    start = int(t * sample_rate)
    if start >= length:
      break
    pieces.append((start, _strike(length - start, rng, sample_rate, freqs, decays,
                                  rng.uniform(0.5, 1.0))))
    t += rng.uniform(0.2, 1.0)
  return _place(length, pieces) * _fades(length, sample_rate, 0.01)


# --------------------------------------------------------------------------
# Natural textures: rain, wind, water, crowd.


def _texture_gain(times: np.ndarray, rng: np.random.Generator, depth: float,
                  seconds: float) -> np.ndarray:
  """A slow random level curve exp(depth x walk) over frames, `seconds` the time scale."""
  step = times[1] - times[0] if times.size > 1 else 0.01
  return np.exp(depth * _random_walk(times.size, rng, max(2, int(seconds / step))))


def _droplets(length: int, rng: np.random.Generator, sample_rate: int, rate: float,
              f_range: Tuple[float, float], decay: Tuple[float, float], rise: float,
              gain: np.ndarray = None) -> np.ndarray:
  """Bubble or drop grains: decaying sinusoids with a rising pitch (a Minnaert bubble) at
  Poisson times, `rate` per second; `gain` [length] scales their rate locally."""
  count = rng.poisson(rate * length / sample_rate)
  grain = int(decay[1] * 3.5 * sample_rate)  # 30 dB down
  starts = rng.integers(0, max(1, length), count)
  if gain is not None and count:
    keep = rng.random(count) < gain[starts] / (gain.max() + 1e-9)
    starts = starts[keep]
    count = starts.size
  f_high = min(f_range[1], 0.42 * sample_rate)
  f0 = np.exp(rng.uniform(np.log(min(f_range[0], 0.5 * f_high)), np.log(f_high), count))
  tau = rng.uniform(*decay, count)
  amps = np.exp(rng.normal(0, 0.7, count)) * rng.choice([-1.0, 1.0], count)
  t = np.arange(grain, dtype=_F32) / _F32(sample_rate)
  # Frequency f0 (1 + rise t / tau): the phase integrates it.
  omega = (2 * np.pi * f0).astype(_F32)[:, None]
  inverse_tau = (1.0 / tau).astype(_F32)[:, None]
  phase = omega * (t + _F32(0.5 * rise) * (t * t) * inverse_tau)
  taper = _fades(2 * grain, sample_rate, 0.3 * grain / sample_rate)[grain:]  # no end click
  grains = amps.astype(_F32)[:, None] * np.exp(-t * inverse_tau) * np.sin(phase) * taper
  return _grains(length, starts, grains)


def _rain(length, rng, sample_rate, background=False):
  """Broadband hiss of many distant drops plus near drops and splashes."""
  times = _frame_times(length, sample_rate)
  freqs = _bins(sample_rate)
  tilt = rng.uniform(0.3, 1.2)
  corner = rng.uniform(300, 1500)
  spectrum = (np.maximum(freqs, 1.0) / corner) ** 2
  shape = (spectrum / (1 + spectrum)) ** 0.5 * (1 + freqs / corner) ** -tilt
  level = _texture_gain(times, rng, rng.uniform(0.2, 0.6), rng.uniform(0.3, 1.5))
  hiss = _shaped_noise(length, rng, sample_rate, (level[:, None] * shape[None, :]).astype(_F32))
  hiss /= np.std(hiss) + 1e-9
  drops = _droplets(length, rng, sample_rate, rng.uniform(20, 200), (1500, 6000),
                    (0.002, 0.008), rng.uniform(0.0, 0.3))
  drops /= np.std(drops) + 1e-9
  out = hiss + rng.uniform(0.3, 1.0) * drops
  return out if background else out * _fades(length, sample_rate, rng.uniform(0.05, 0.3))


def _wind(length, rng, sample_rate, background=False):
  """Low band noise whose level and centre follow gusts, sometimes with a whistle."""
  times = _frame_times(length, sample_rate)
  freqs = _bins(sample_rate)
  strength = _texture_gain(times, rng, rng.uniform(0.3, 0.8), rng.uniform(0.3, 1.2))
  # The band rises with the gusts, but stays a low rumble-to-roar (under 2 kHz).
  centre = np.minimum(rng.uniform(150, 600) * strength ** 0.5, 2000.0)
  width = rng.uniform(0.5, 1.1)  # octaves
  shape = np.exp(-0.5 * (np.log2(np.maximum(freqs, 10.0)[None, :] / centre[:, None]) / width)
                 ** 2) * strength[:, None]
  if rng.random() < 0.4:  # a whistle through a gap, rising with the wind
    whistle = min(rng.uniform(500, 1500), 0.3 * sample_rate) * strength ** 0.5
    shape = shape + rng.uniform(0.5, 2.0) * strength[:, None] ** 2 * np.exp(
        -0.5 * ((freqs[None, :] - whistle[:, None]) / 25.0) ** 2)
  out = _shaped_noise(length, rng, sample_rate, shape.astype(_F32))
  return out if background else out * _fades(length, sample_rate, rng.uniform(0.1, 0.4))


def _water(length, rng, sample_rate, background=False):
  """A stream: many bubbles (rising-pitch decaying sinusoids) over a low rumble."""
  times = _frame_times(length, sample_rate)
  freqs = _bins(sample_rate)
  flow = _texture_gain(times, rng, rng.uniform(0.1, 0.5), rng.uniform(0.2, 1.0))
  gain = np.interp(np.arange(length) / sample_rate, times, flow)
  bubbles = _droplets(length, rng, sample_rate, rng.uniform(50, 250), (250, 2500),
                      (0.003, 0.012), rng.uniform(0.05, 0.4), gain)
  bubbles /= np.std(bubbles) + 1e-9
  corner = rng.uniform(200, 800)
  shape = flow[:, None] / (1 + (freqs[None, :] / corner) ** 2)
  rumble = _shaped_noise(length, rng, sample_rate, shape.astype(_F32))
  rumble /= np.std(rumble) + 1e-9
  out = bubbles + rng.uniform(0.2, 0.8) * rumble
  return out if background else out * _fades(length, sample_rate, rng.uniform(0.05, 0.3))


def _crowd(length, rng, sample_rate, background=False):
  """Many distant talkers (speech-shaped noise with syllabic flutter), a few near voices,
  and sometimes applause."""
  times = _frame_times(length, sample_rate)
  freqs = _bins(sample_rate)
  # The long-term average speech spectrum: a peak near 500 Hz, -6 dB/octave above 1 kHz.
  ltass = (freqs / 500.0) / (1 + (freqs / 500.0) ** 2) * (1 + freqs / 4000.0) ** -1
  frame = times[1] - times[0] if times.size > 1 else 0.01
  flutter = 1 + 0.25 * _random_walk(times.size, rng, max(2, int(0.08 / frame)))
  swell = _texture_gain(times, rng, rng.uniform(0.1, 0.5), rng.uniform(0.5, 2.0))
  shape = (ltass[None, :] * (flutter * swell)[:, None]).astype(_F32)
  murmur = _shaped_noise(length, rng, sample_rate, shape)
  murmur /= np.std(murmur) + 1e-9
  near = _voices(length, rng, sample_rate, int(rng.integers(1, 4)), 1.0, 6.0, running=True)
  out = murmur + rng.uniform(0.2, 0.6) * near / (np.std(near) + 1e-9)
  if rng.random() < 0.3:  # applause: dense claps over a stretch
    start = int(rng.uniform(0, 0.5) * length)
    stretch = length - start
    claps = _droplets(stretch, rng, sample_rate, rng.uniform(100, 400), (900, 2500),
                      (0.001, 0.004), 0.0)
    noise = rng.standard_normal(stretch).astype(_F32)
    applause = claps * np.abs(noise) * _fades(stretch, sample_rate, 0.2)
    out[start:] += rng.uniform(0.3, 1.0) * applause / (np.std(applause) + 1e-9)
  return out if background else out * _fades(length, sample_rate, rng.uniform(0.1, 0.4))


# --------------------------------------------------------------------------
# The kinds.


@dataclasses.dataclass(frozen=True)
class EventKind:
  """A foreground kind made of events: `event(length, rng, rate) -> [length]` placed in
  `count` (min, max) spans of `duration` (min, max) seconds, each at least 50 ms."""
  event: Callable[[int, np.random.Generator, int], np.ndarray]
  count: Tuple[int, int]
  duration: Tuple[float, float]


EVENT_KINDS: Dict[str, EventKind] = {
    'speech': EventKind(_speech_event, (1, 2), (0.6, 2.5)),
    'babble': EventKind(_babble_event, (1, 1), (1.0, 4.0)),
    'melody': EventKind(_melody, (1, 1), (1.0, 4.0)),
    'chords': EventKind(_chords, (1, 1), (1.0, 4.0)),
    'percussion': EventKind(_percussion, (1, 1), (1.0, 4.0)),
    'bird_song': EventKind(_bird_song, (1, 3), (0.3, 2.0)),
    'animal_call': EventKind(_animal_call, (1, 2), (0.4, 2.5)),
    'insect': EventKind(_insect, (1, 1), (0.8, 4.0)),
    'impact': EventKind(_impact, (1, 3), (0.2, 1.5)),
    'resonant_object': EventKind(_resonant_object, (1, 2), (0.6, 3.0)),
    'rain': EventKind(_rain, (1, 1), (1.0, 5.0)),
    'wind': EventKind(_wind, (1, 1), (1.0, 5.0)),
    'water': EventKind(_water, (1, 1), (1.0, 5.0)),
    'crowd': EventKind(_crowd, (1, 1), (1.0, 5.0)),
}


def event_foreground(kind: str, n: int, rng: np.random.Generator,
                     sample_rate: int) -> Tuple[np.ndarray, List[Span]]:
  """An event kind's foreground [n] and its (start, length) spans; zero outside them."""
  spec = EVENT_KINDS[kind]
  spans = _events(n, rng, sample_rate, spec.count, spec.duration)
  out = np.zeros(n)
  for start, length in spans:
    out[start:start + length] += spec.event(length, rng, sample_rate)
  return out, spans


def _event_synth(kind: str) -> Synth:
  return lambda n, rng, sample_rate: event_foreground(kind, n, rng, sample_rate)[0]


def _texture_background(texture) -> Synth:
  return lambda n, rng, sample_rate: texture(n, rng, sample_rate, background=True)


CLASSIC_FOREGROUND = ('harmonic_tone', 'chirp', 'noise_burst', 'click_train', 'am_fm_texture')
STATIONARY_BACKGROUND = 'stationary_background'

FOREGROUND_KINDS: Dict[str, Synth] = {
    'harmonic_tone': _harmonic_tone,
    'chirp': _chirp,
    'noise_burst': _noise_burst,
    'click_train': _click_train,
    'am_fm_texture': _am_fm_texture,
    **{kind: _event_synth(kind) for kind in EVENT_KINDS},
}
BACKGROUND_KINDS: Dict[str, Synth] = {
    STATIONARY_BACKGROUND: _stationary_background,
    'music_bed': _music_background,
    'babble': _babble_background,
    'rain': _texture_background(_rain),
    'wind': _texture_background(_wind),
    'water': _texture_background(_water),
    'crowd': _texture_background(_crowd),
}


@dataclasses.dataclass(frozen=True)
class KindSet:
  """The kinds an example draws from: its foregrounds (uniformly) and its backgrounds (one,
  uniformly). `name` is 'classic', 'varied' or 'custom'."""
  foreground: Tuple[str, ...]
  background: Tuple[str, ...]
  name: str = 'custom'

  @property
  def class_names(self) -> Tuple[str, ...]:
    """The labels sidecar's classes: the foregrounds, then the backgrounds not among them."""
    return self.foreground + tuple(k for k in self.background if k not in self.foreground)

  def record(self) -> dict:
    return {'name': self.name, 'foreground': list(self.foreground),
            'background': list(self.background)}


KIND_SETS: Dict[str, KindSet] = {
    'classic': KindSet(CLASSIC_FOREGROUND, (STATIONARY_BACKGROUND,), 'classic'),
    'varied': KindSet(tuple(FOREGROUND_KINDS), tuple(BACKGROUND_KINDS), 'varied'),
}

Kinds = Union[str, KindSet, Mapping[str, Sequence[str]], Tuple[Sequence[str], Sequence[str]]]


def kind_set(kinds: Kinds) -> KindSet:
  """A named set ('classic', 'varied'), a KindSet, {'foreground': [...], 'background':
  [...]} or a (foreground names, background names) pair, checked against the kinds."""
  if isinstance(kinds, str):
    if kinds not in KIND_SETS:
      raise ValueError(f'kinds must be one of {sorted(KIND_SETS)} or lists of kind names, '
                       f'got {kinds!r}')
    return KIND_SETS[kinds]
  if isinstance(kinds, KindSet):
    chosen = kinds
  else:
    if isinstance(kinds, Mapping):
      foreground, background = kinds.get('foreground', ()), kinds.get('background', ())
    else:
      foreground, background = kinds
    if isinstance(foreground, str) or isinstance(background, str):
      raise ValueError('foreground and background must be lists of kind names')
    foreground, background = tuple(foreground), tuple(background)
    named = [name for name, s in KIND_SETS.items()
             if (s.foreground, s.background) == (foreground, background)]
    chosen = KindSet(foreground, background, named[0] if named else 'custom')
  unknown = [k for k in chosen.foreground if k not in FOREGROUND_KINDS]
  unknown += [k for k in chosen.background if k not in BACKGROUND_KINDS]
  if unknown:
    raise ValueError(f'unknown sound kinds {unknown}; foregrounds: {sorted(FOREGROUND_KINDS)}, '
                     f'backgrounds: {sorted(BACKGROUND_KINDS)}')
  if not chosen.background:
    raise ValueError('need at least one background kind')
  if not chosen.foreground:
    raise ValueError('need at least one foreground kind')
  return chosen
