r"""The quantised LiteRT models against the float one: size, speed, MSi and 1S on an eval split.

    python benchmarks/litert_quantized_quality.py --model_dir RUN/model \
        --example_list RUN/data/eval_example_list.txt --work_dir /tmp/quantized \
        [--threads 2 --max_examples 0]

Exports the model of `--model_dir` twice with `mixit-export --litert` (the
float `model.tflite`, plus `model_int8.tflite` and `model_float16.tflite` of
`--litert_quantize dynamic_int8` / `float16`), with the LiteRT window as long as
the split's examples. Then runs every example of the split through each
`.tflite` in the LiteRT interpreter and scores it with the FUSS evaluator
(`eval.fuss.evaluate`, the same code as `mixit-evaluate`). Also reports each
quantised model's SI-SNR against the float model's outputs (the worst source
and the median over sources). Prints a markdown table: file size, seconds per
example, MSi, 1S, and the differences from the float model.
"""
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

_MODEL_DIR = flags.DEFINE_string('model_dir', None, 'Training run (model dir) to export.')
_EXAMPLE_LIST = flags.DEFINE_string('example_list', None, 'FUSS example list of the eval split.')
_WORK_DIR = flags.DEFINE_string('work_dir', None, 'Where the exports go (created; must not '
                                'hold earlier exports).')
_THREADS = flags.DEFINE_integer('threads', 2, 'LiteRT interpreter threads.')
_MAX_EXAMPLES = flags.DEFINE_integer('max_examples', 0, 'Score only this many (0: all).')
flags.mark_flags_as_required(['model_dir', 'example_list', 'work_dir'])


def main(argv):
  del argv
  from data_pipeline import fuss as fuss_data
  from eval import fuss as fuss_eval
  from eval import metrics as eval_metrics
  from mixit.serving import export as export_lib
  from mixit.serving import litert

  examples = fuss_data.read_example_list(_EXAMPLE_LIST.value)
  if _MAX_EXAMPLES.value:
    examples = examples[:_MAX_EXAMPLES.value]
  loaded = [fuss_eval.load_example(example) for example in examples]
  lengths = {example.mixture.shape[-1] for example in loaded}
  rates = {example.sample_rate for example in loaded}
  if len(lengths) != 1 or len(rates) != 1:
    raise app.UsageError(f'--example_list: the examples must share one length and rate, got '
                         f'lengths {sorted(lengths)} and rates {sorted(rates)}')
  sample_rate = rates.pop()
  window_seconds = lengths.pop() / sample_rate
  files = {}
  for quantize in ('dynamic_int8', 'float16'):
    out = os.path.join(_WORK_DIR.value, quantize)
    export_lib.export_saved_model(_MODEL_DIR.value, out, litert=True,
                                  litert_window_seconds=window_seconds, litert_quantize=quantize)
    files.setdefault('float32', os.path.join(out, litert.TFLITE_FILENAME))
    files[quantize] = os.path.join(out, litert.QUANTIZED_FILENAMES[quantize])

  outputs, rows = {}, []
  for name, path in files.items():
    runner = litert.interpreter(path, num_threads=_THREADS.value)
    seconds = []
    separated = []

    def separate(mixtures, runner=runner, seconds=seconds, separated=separated):
      start = time.perf_counter()
      result = np.stack([litert.run_window(runner, mixture) for mixture in mixtures])
      seconds.append(time.perf_counter() - start)
      separated.append(result)
      return result

    summary = fuss_eval.evaluate(separate, loaded, baselines=(),
                                 sample_rate=sample_rate).summary(name)
    outputs[name] = separated
    rows.append((name, os.path.getsize(path), float(np.median(seconds)), summary['msi'],
                 summary['1s'], summary['num_examples']))
    print(f'{name}: MSi {summary["msi"]:.2f} 1S {summary["1s"]:.2f}', flush=True)

  print()
  print(f'LiteRT models of {_MODEL_DIR.value} on {len(loaded)} examples of '
        f'{_EXAMPLE_LIST.value} ({window_seconds:g}-s window, {_THREADS.value} interpreter '
        f'threads, {os.cpu_count()} cores).')
  print()
  print('| model | size (MB) | s/example (median) | MSi (dB) | 1S (dB) | MSi - float | '
        '1S - float | SI-SNR vs float, worst / median source (dB) |')
  print('|---|---|---|---|---|---|---|---|')
  base = rows[0]
  for name, size, seconds, msi, one, _ in rows:
    if name == 'float32':
      agreement = '-'
    else:
      snr = np.concatenate([eval_metrics.si_snr(f, q).reshape(-1)
                            for f, q in zip(outputs['float32'], outputs[name])])
      snr = snr[np.isfinite(snr)]
      agreement = f'{snr.min():.1f} / {np.median(snr):.1f}'
    print(f'| {name} | {size / 1e6:.1f} | {seconds:.3f} | {msi:.2f} | {one:.2f} | '
          f'{msi - base[3]:+.2f} | {one - base[4]:+.2f} | {agreement} |')


if __name__ == '__main__':
  app.run(main)
