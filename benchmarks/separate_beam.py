"""mixit-separate-beam on Beam's local runner with N worker processes against mixit-separate.

    python benchmarks/separate_beam.py [--num_files 40 --seconds 10 --workers 2 --rounds 1]
        [--saved_model E] [--work_dir D]

Writes `--num_files` recordings of `--seconds` s (16 kHz, tones in noise), then times, each as
its own command-line process (start-up and model load included, as a user sees them):

- `mixit-separate` on the folder;
- `mixit-separate-beam` on Beam's Python runner (`--runner FnApiRunner`, what the DirectRunner
  runs offline) in multi-processing mode with 1 and with `--workers` worker processes;
- the same Beam run again on its own output dir: every file skipped as complete.

With `--rounds R` the runs are repeated R times, interleaved, and a second table gives each
run's median. Checks that every output's samples equal mixit-separate's and prints a markdown
table, a row as each run ends (wall time, RTF = wall seconds per audio second, speed-up over
mixit-separate) with the machine's load average before and after each run: figures on a loaded
machine say so. A shared machine may pause (SIGSTOP) niced jobs: the time a run's process
spends stopped is left out of its wall time and shown. Without
`--saved_model` the paper-size TDCN++ (`--model_gin`, M = `--num_sources`, untrained weights:
they time the same as trained ones) is exported into the work dir.
"""
import os
import subprocess
import sys
import tempfile
import time

from absl import app
import numpy as np
from absl import flags

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

_NUM_FILES = flags.DEFINE_integer('num_files', 40, 'Recordings to separate.')
_SECONDS = flags.DEFINE_float('seconds', 10.0, 'Length of each recording.')
_WORKERS = flags.DEFINE_integer('workers', 2, 'Beam worker processes of the main Beam run.')
_SAVED_MODEL = flags.DEFINE_string('saved_model', None,
                                   'A mixit SavedModel; default: export --model_gin.')
_MODEL_GIN = flags.DEFINE_string('model_gin', 'models/tdcnpp_paper.gin',
                                 'The network exported without --saved_model.')
_NUM_SOURCES = flags.DEFINE_integer('num_sources', 8, 'M of the exported network.')
_WORK_DIR = flags.DEFINE_string('work_dir', None, 'Where to write (default: a temporary dir).')
_ROUNDS = flags.DEFINE_integer('rounds', 1, 'Interleaved rounds of every run; the summary '
                               'gives each run\'s median.', lower_bound=1)

SAMPLE_RATE = 16000


def _export(work_dir: str) -> str:
  import mixit  # noqa: F401  (sets KERAS_BACKEND)
  import tensorflow as tf
  from mixit import gin_config
  from mixit import model as model_lib
  from mixit.serving import export
  gin_config.parse([_MODEL_GIN.value], [f'NUM_SOURCES = {_NUM_SOURCES.value}'])
  network = model_lib.build_network()
  network(tf.zeros([1, SAMPLE_RATE]))
  model_dir = os.path.join(work_dir, 'model_dir')
  tf.train.CheckpointManager(tf.train.Checkpoint(network=network), model_dir, 1).save()
  gin_config.write_config(model_dir)
  export_dir = os.path.join(work_dir, 'export')
  export.export_saved_model(model_dir, export_dir, overwrite=True)
  return export_dir


def _recordings(folder: str) -> float:
  from data_pipeline import audio_io
  rng = np.random.default_rng(0)
  length = int(_SECONDS.value * SAMPLE_RATE)
  t = np.arange(length) / SAMPLE_RATE
  for index in range(_NUM_FILES.value):
    f0, f1 = rng.uniform(100, 3000, 2)
    audio = (0.2 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * f1 * t) *
             (t % 1.0 < 0.5) + 0.02 * rng.standard_normal(length))
    audio_io.write_wav(os.path.join(folder, f'rec{index:03d}.wav'), audio.astype(np.float32),
                       SAMPLE_RATE)
  return _NUM_FILES.value * _SECONDS.value


def _stopped(pid: int) -> bool:
  """Whether process `pid` is stopped (SIGSTOP: a shared machine may pause niced jobs)."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[0] in ('T', 't')
  except (OSError, IndexError):
    return False


def _timed(command) -> dict:
  """Runs `command`; its wall time, less the time it (or this process) spent stopped, sampled
  every 0.1 s."""
  load_before = os.getloadavg()[0]
  started = time.monotonic()
  stopped = 0.0
  with tempfile.TemporaryFile('w+') as log:
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True,
                               cwd=_REPO)
    last = time.monotonic()
    while process.poll() is None:
      time.sleep(0.1)
      now = time.monotonic()
      gap, last = now - last, now
      if gap > 5.0:  # this process was stopped too (nothing else delays a 0.1 s sleep so long)
        stopped += gap - 0.1
      elif _stopped(process.pid):
        stopped += gap
    seconds = time.monotonic() - started - stopped
    if process.returncode != 0:
      log.seek(0)
      raise RuntimeError(f'{" ".join(command)} failed:\n{log.read()[-3000:]}')
  return {'seconds': seconds, 'stopped': stopped, 'load': (load_before, os.getloadavg()[0])}


def _same_samples(folder: str, reference: str) -> int:
  import soundfile
  names = sorted(n for n in os.listdir(reference) if n.endswith('.wav'))
  for name in names:
    a, rate_a = soundfile.read(os.path.join(reference, name), dtype='float32')
    b, rate_b = soundfile.read(os.path.join(folder, name), dtype='float32')
    if rate_a != rate_b or not np.array_equal(a, b):
      raise AssertionError(f'{folder}/{name} differs from mixit-separate\'s output')
  return len(names)


def main(argv) -> None:
  del argv
  work_dir = _WORK_DIR.value or tempfile.mkdtemp(prefix='separate_beam_bench_')
  saved_model = _SAVED_MODEL.value or _export(work_dir)
  inputs = os.path.join(work_dir, 'inputs')
  audio_seconds = _recordings(inputs)
  bin_dir = os.path.dirname(sys.executable)
  separate = [os.path.join(bin_dir, 'mixit-separate'), '--saved_model', saved_model, '--input',
              inputs, '--noprogress']
  beam = [os.path.join(bin_dir, 'mixit-separate-beam'), '--saved_model', saved_model,
          '--input', inputs, '--runner', 'FnApiRunner', '--direct_running_mode',
          'multi_processing']
  print(f'{_NUM_FILES.value} files of {_SECONDS.value:g} s ({audio_seconds:g} s of audio), '
        f'{os.cpu_count()} CPUs, SavedModel {saved_model}; Beam outputs checked against '
        'mixit-separate\'s sample for sample\n', flush=True)
  print('| round | run | workers | wall s | RTF | vs mixit-separate | stopped s | '
        'load avg before -> after |')
  print('|---|---|---|---|---|---|---|---|', flush=True)
  times = {}

  def row(round_index, name, workers, timing, base):
    seconds = timing['seconds']
    times.setdefault((name, workers), []).append(seconds)
    print(f'| {round_index} | {name} | {workers} | {seconds:.1f} | '
          f'{seconds / audio_seconds:.3f} | {base / seconds:.2f}x | {timing["stopped"]:.0f} | '
          f'{timing["load"][0]:.1f} -> {timing["load"][1]:.1f} |', flush=True)

  for round_index in range(1, _ROUNDS.value + 1):
    # Each round writes fresh output dirs: a run never finds a previous round's outputs.
    reference = os.path.join(work_dir, f'round{round_index}', 'out_separate')
    timing = _timed(separate + ['--output_dir', reference])
    base = timing['seconds']
    row(round_index, 'mixit-separate', 1, timing, base)
    for workers in sorted({1, _WORKERS.value}):
      out = os.path.join(work_dir, f'round{round_index}', f'out_beam_{workers}')
      timing = _timed(beam + ['--output_dir', out, '--direct_num_workers', str(workers)])
      _same_samples(out, reference)
      row(round_index, 'mixit-separate-beam', workers, timing, base)
    row(round_index, f'mixit-separate-beam rerun (all {_NUM_FILES.value} skipped)',
        _WORKERS.value,
        _timed(beam + ['--output_dir', out, '--direct_num_workers', str(_WORKERS.value)]), base)

  base = float(np.median(times[('mixit-separate', 1)]))
  print(f'\nMedians of {_ROUNDS.value} interleaved round(s):\n')
  print('| run | workers | wall s | RTF | overhead vs mixit-separate |')
  print('|---|---|---|---|---|')
  for (name, workers), values in times.items():
    median = float(np.median(values))
    print(f'| {name} | {workers} | {median:.1f} | {median / audio_seconds:.3f} | '
          f'{100 * (median / base - 1):+.0f}% |')

if __name__ == '__main__':
  app.run(main)
