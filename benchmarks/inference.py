"""Inference speed and memory of an exported TDCN++: SavedModel, LiteRT and in-memory Keras.

    python benchmarks/inference.py [--num_sources 8,16] [--long_minutes 10] [--quick]

For each M, a network is built from `--model_gin` (the paper size by default;
random weights: the initial ones plus seeded noise, so that no bias is zero, as in a
trained model), checkpointed and exported with
`mixit.serving.export`, with the `.tflite` of `mixit-export --litert` (a 10 s
window) beside it. Then, each in a fresh process so peak memory is its own:

- 10 s: one call of the SavedModel's `serving_default` on [1, 10 s], of the
  in-memory Keras network wrapped in a `tf.function` with the same
  `[None, None]` signature (and eagerly), in one process, calls interleaved, best
  and median of `--repeats` after a warm-up (TF's default threads, or `--threads`).
- LiteRT, like for like: for 1 and then 2 threads, a process whose TF runs on that
  many threads (intra- and inter-op) times the SavedModel against the `.tflite`
  (float32, and its `dynamic_int8` and `float16` variants) in an interpreter
  (`ai-edge-litert`) of that many threads, calls interleaved. The rows give each
  file's size, the median call, the median of the paired LiteRT / SavedModel
  ratios, how many pieces XNNPACK took the graph in (and which operators it left
  out), and the difference from the reference: the float model's largest difference
  from the SavedModel (relative to its peak), a quantised model's worst-source
  SI-SNR against the float `.tflite`. `--skip_litert` leaves them out.
- long files: `mixit.serving.separate.separate_file` on 1 min and `--long_minutes` min
  WAVs (windows of `--max_chunk_seconds`, overlap `--overlap`), streaming from
  and to disk; wall time, the share spent in the model, and the process's peak
  RSS (flat in file length when streaming works).

RTF = processing seconds / audio seconds. Prints a markdown table.
`--quick` (a smoke run): M = 8 only, 3 repeats, no long files.
"""
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import types

from absl import app
from absl import flags

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

SAMPLE_RATE = 16000
# The LiteRT window: the benchmark's 10 s call in one invocation.
LITERT_WINDOW_SECONDS = 10.0
LITERT_THREADS = (1, 2)


def _rss_mb() -> float:
  with open('/proc/self/statm') as f:
    pages = int(f.read().split()[1])
  return pages * os.sysconf('SC_PAGE_SIZE') / 2**20


def _peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _configure_threads(threads: int) -> None:
  import tensorflow as tf
  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _worker_export(args) -> dict:
  import numpy as np
  import mixit  # noqa: F401  (sets KERAS_BACKEND)
  import tensorflow as tf
  from mixit.serving import export
  from mixit import gin_config
  from mixit import model as model_lib
  import keras
  keras.utils.set_random_seed(0)  # the same weights (and quantisation errors) every run
  gin_config.parse([args.model_gin], [f'NUM_SOURCES = {args.m}'])
  network = model_lib.build_network()
  network(tf.zeros([1, SAMPLE_RATE]))
  # Seeded noise on every weight: like a trained model's, no bias is zero and no gain one.
  # The LiteRT converter folds those away in the initial weights, and its graph then differs.
  rng = np.random.default_rng(3)
  for variable in network.trainable_variables:
    variable.assign(variable.numpy() + 0.05 * rng.standard_normal(variable.shape))
  tf.train.CheckpointManager(tf.train.Checkpoint(network=network), args.model_dir, 1).save()
  gin_config.write_config(args.model_dir)
  started = time.perf_counter()
  metadata = export.export_saved_model(args.model_dir, args.export_dir, overwrite=True,
                                       litert=not args.skip_litert,
                                       litert_window_seconds=LITERT_WINDOW_SECONDS,
                                       litert_quantize='none' if args.skip_litert else
                                       'dynamic_int8')
  seconds = time.perf_counter() - started
  saved_model_bytes = sum(
      os.path.getsize(os.path.join(args.export_dir, name)) for name in metadata['files']
      if name == 'saved_model.pb' or name.startswith('variables/'))
  if not args.skip_litert:
    # The float16 variant beside it (an export writes one quantised variant).
    from mixit.serving import litert
    window = litert.window_samples(network, LITERT_WINDOW_SECONDS)
    float16 = litert.convert(network, window, 'float16')
    with open(os.path.join(args.export_dir, litert.QUANTIZED_FILENAMES['float16']), 'wb') as f:
      f.write(float16)
  return {'export_seconds': seconds,
          'num_parameters': metadata['num_parameters'],
          'saved_model_bytes': saved_model_bytes}


def _worker_short(args) -> dict:
  """SavedModel and Keras timed in one process, calls interleaved, so that load from
  other processes on the machine affects all alike."""
  import numpy as np
  import mixit  # noqa: F401
  import tensorflow as tf
  from mixit.serving import export
  from mixit.serving import separator as separator_lib
  _configure_threads(args.threads)
  mixture = tf.constant(
      (0.1 * np.random.default_rng(0).standard_normal([1, 10 * SAMPLE_RATE])).astype(np.float32))
  _, signature, _, _ = separator_lib.load_saved_model(args.export_dir)
  network, _, _ = export.restore_network(args.model_dir)
  function = tf.function(lambda x: network(x, training=False)['separated_waveforms'],
                         input_signature=[tf.TensorSpec([None, None], tf.float32)])
  calls = {
      'saved_model': lambda: signature(**{separator_lib.INPUT_KEY: mixture})[
          separator_lib.OUTPUT_KEY].numpy(),
      'keras_function': lambda: function(mixture).numpy(),
      'keras_eager': lambda: network(mixture, training=False)['separated_waveforms'].numpy(),
  }
  times, cpu_times = _interleaved(calls, args.repeats)
  reference = calls['saved_model']()
  difference = np.max(np.abs(reference - calls['keras_function']()))
  result = {name: sorted(t)[len(t) // 2] for name, t in times.items()}
  result['saved_model_min'] = min(times['saved_model'])
  result['keras_function_min'] = min(times['keras_function'])
  result['ratio_median'] = float(np.median(np.array(times['saved_model']) /
                                           np.array(times['keras_function'])))
  result['max_abs_difference'] = float(difference)
  result['saved_model_cpu'] = float(np.median(cpu_times['saved_model']))
  return result


def _interleaved(calls, repeats):
  """Times of `repeats` rounds of the calls (after one warm-up call each), the order rotated
  every round, so that neither load from other processes nor a first- or last-in-a-round
  effect falls on one path. Returns wall and process CPU seconds per call."""
  times = {name: [] for name in calls}
  cpu_times = {name: [] for name in calls}
  for call in calls.values():
    call()  # trace / warm up
  names = list(calls)
  for repeat in range(repeats):
    for name in names[repeat % len(names):] + names[:repeat % len(names)]:
      started, cpu_started = time.perf_counter(), time.process_time()
      calls[name]()
      times[name].append(time.perf_counter() - started)
      cpu_times[name].append(time.process_time() - cpu_started)
  return times, cpu_times


def _worker_litert(args) -> dict:
  """The SavedModel and the `.tflite` files at one thread count: TF's intra- and inter-op
  threads and the interpreters' threads all `args.litert_threads`; calls interleaved."""
  import numpy as np
  import mixit  # noqa: F401
  import tensorflow as tf
  from eval import metrics as eval_metrics
  from mixit.serving import litert
  from mixit.serving import separator as separator_lib
  threads = args.litert_threads
  _configure_threads(threads)
  mixture = (0.1 * np.random.default_rng(0).standard_normal([1, 10 * SAMPLE_RATE])).astype(
      np.float32)
  tensor = tf.constant(mixture)
  _, signature, _, _ = separator_lib.load_saved_model(args.export_dir)
  calls = {'saved_model': lambda: signature(**{separator_lib.INPUT_KEY: tensor})[
      separator_lib.OUTPUT_KEY].numpy()[0]}
  files = {'float32': litert.TFLITE_FILENAME, **litert.QUANTIZED_FILENAMES}
  result = {'threads': threads, 'litert': {}}
  for kind, name in files.items():
    path = os.path.join(args.export_dir, name)
    if not os.path.exists(path):
      continue
    runner = litert.interpreter(path, num_threads=threads)
    pieces, left = litert.delegation(runner)
    result['litert'][kind] = {'file': name, 'bytes': os.path.getsize(path),
                              'delegated_pieces': pieces, 'undelegated': sorted(set(left))}
    calls[kind] = lambda runner=runner: litert.run_window(runner, mixture[0])
  times, _ = _interleaved(calls, args.repeats)
  reference = calls['saved_model']()
  result['saved_model'] = float(np.median(times['saved_model']))
  float_output = calls['float32']()
  for kind, entry in result['litert'].items():
    entry['median'] = float(np.median(times[kind]))
    entry['ratio_median'] = float(np.median(np.array(times[kind]) /
                                            np.array(times['saved_model'])))
    output = calls[kind]()
    if kind == 'float32':
      entry['relative_difference'] = float(np.max(np.abs(output - reference)) /
                                           np.max(np.abs(reference)))
    else:
      energy = np.sum(float_output ** 2, -1)
      loud = energy > 1e-3 * np.max(energy)
      entry['worst_si_snr'] = float(np.min(eval_metrics.si_snr(float_output[loud], output[loud])))
  return result


def _worker_file(args) -> dict:
  import numpy as np
  _configure_threads(args.threads)
  from mixit.serving import separate
  from mixit.serving import separator as separator_lib
  separator = separator_lib.load_separator(args.export_dir,
                                           max_chunk_seconds=args.max_chunk_seconds,
                                           overlap_seconds=args.overlap)
  model_seconds = [0.0]
  inner = separator._model_fn

  def timed(mixture):
    started = time.perf_counter()
    out = inner(mixture)
    model_seconds[0] += time.perf_counter() - started
    return out

  separator._model_fn = timed
  separator(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)  # warm up the kernels
  model_seconds[0] = 0.0
  baseline = _rss_mb()
  with tempfile.TemporaryDirectory() as out:
    started, cpu_started = time.perf_counter(), time.process_time()
    result = separate.separate_file(separator, args.input, out)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
  return {'seconds': wall, 'cpu_seconds': cpu, 'model_seconds': model_seconds[0],
          'audio_seconds': result.seconds,
          'windows': result.num_windows, 'baseline_rss_mb': baseline,
          'peak_rss_mb': _peak_rss_mb()}


def _worker_profile(args) -> dict:
  """Per-op times of one 10 s call, through the graph-mode loader's step stats.

  Ops run in parallel, so the sums exceed the wall time: read them as shares.
  """
  import collections
  import numpy as np
  import tensorflow as tf
  from mixit.serving import separator as separator_lib
  mixture = (0.1 * np.random.default_rng(0).standard_normal([1, 10 * SAMPLE_RATE])).astype(
      np.float32)
  by_part, by_type = collections.Counter(), collections.Counter()
  with tf.Graph().as_default(), tf.compat.v1.Session() as session:
    graph = tf.compat.v1.saved_model.loader.load(session, ['serve'], args.export_dir)
    signature = graph.signature_def[separator_lib.SIGNATURE_KEY]
    fetch = signature.outputs[separator_lib.OUTPUT_KEY].name
    feed = {signature.inputs[separator_lib.INPUT_KEY].name: mixture}
    session.run(fetch, feed)
    # Each node's fastest of several traced runs: on a shared machine a single
    # trace charges descheduled time to whichever op was running.
    fastest, labels = {}, {}
    for _ in range(args.repeats):
      metadata = tf.compat.v1.RunMetadata()
      session.run(fetch, feed, run_metadata=metadata, options=tf.compat.v1.RunOptions(
          trace_level=tf.compat.v1.RunOptions.FULL_TRACE))
      for device in metadata.step_stats.dev_stats:
        for node in device.node_stats:
          key = (device.device, node.node_name)
          fastest[key] = min(fastest.get(key, float('inf')), node.all_end_rel_micros)
          labels[key] = node
  for key, micros in fastest.items():
    node = labels[key]
    label = node.timeline_label
    op = label.split('=', 1)[1].split('(')[0].strip() if '=' in label else node.node_name
    parts = node.node_name.split('/')
    # Network parts are the scopes under the network's name (stft, core, mask_head, ...).
    roots = [i for i, p in enumerate(parts) if p.startswith('separation_network')]
    part = parts[roots[0] + 1] if roots and roots[0] + 1 < len(parts) else 'other'
    part = re.sub(r'_\d+$', '', part)
    if part == 'core' and roots[0] + 2 < len(parts):
      part = 'core/' + parts[roots[0] + 2].split('_')[0]
    by_part[part] += micros
    by_type[op] += micros
  total = sum(by_type.values())
  return {'total_ms': total / 1000,
          'parts': [(k, v / total) for k, v in by_part.most_common(8)],
          'ops': [(k, v / total) for k, v in by_type.most_common(8)]}


def _print_litert_table(rows, repeats) -> None:
  """The LiteRT rows: each thread count's SavedModel and `.tflite` files."""
  print('\nLiteRT against the SavedModel, like for like: one 10 s call, the SavedModel with '
        'TF on N threads (intra- and inter-op) and the interpreter on N threads, in one '
        f'process per N, calls interleaved, median of {repeats}.\n')
  print('| M | threads | path | model file (MB) | median (s) | RTF | vs SavedModel | '
        'XNNPACK | difference |')
  # vs SavedModel: the median of the paired (same round) time ratios. XNNPACK: the
  # pieces the delegate ran (1: the whole graph) and any operators it left out.
  # difference: float32, max |LiteRT - SavedModel| / max |SavedModel|; quantised, the
  # worst source's SI-SNR against the float32 .tflite's output.
  print('|---|---|---|---|---|---|---|---|---|')
  for row in rows:
    threads = row['threads']
    print(f'| {row["M"]} | {threads} | SavedModel | {row["saved_model_bytes"] / 2**20:.1f} | '
          f'{row["saved_model"]:.3f} | {row["saved_model"] / 10:.4f} | - | | |')
    for kind, entry in row['litert'].items():
      xnnpack = f'{entry["delegated_pieces"]} piece{"s" if entry["delegated_pieces"] != 1 else ""}'
      if entry['undelegated']:
        xnnpack += ', left out: ' + ' '.join(entry['undelegated'])
      difference = (f'{entry["relative_difference"]:.1e}' if kind == 'float32' else
                    f'{entry["worst_si_snr"]:.1f} dB')
      print(f'| {row["M"]} | {threads} | LiteRT {kind} ({entry["file"]}) | '
            f'{entry["bytes"] / 2**20:.1f} | {entry["median"]:.3f} | {entry["median"] / 10:.4f} | '
            f'{entry["ratio_median"]:.2f}x | {xnnpack} | {difference} |')


def _write_test_file(path: str, minutes: float) -> None:
  import numpy as np
  import soundfile
  rng = np.random.default_rng(0)
  with soundfile.SoundFile(path, 'w', SAMPLE_RATE, 1, subtype='PCM_16') as f:
    for _ in range(int(minutes * 6)):
      t = np.arange(10 * SAMPLE_RATE) / SAMPLE_RATE
      tone = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t)
      f.write((tone + 0.05 * rng.standard_normal(t.shape)).astype(np.float32))


def _spawn(args, **kwargs) -> dict:
  command = [sys.executable, os.path.abspath(__file__), '--threads', str(args.threads),
             '--repeats', str(args.repeats), '--model_gin', args.model_gin,
             '--max_chunk_seconds', str(args.max_chunk_seconds), '--overlap', str(args.overlap)]
  if args.skip_litert:
    command.append('--skip_litert')
  for key, value in kwargs.items():
    command += [f'--{key}', str(value)]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', KERAS_BACKEND='tensorflow')
  result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
  if result.returncode != 0:
    raise RuntimeError(f'worker {kwargs} failed:\n{result.stderr[-4000:]}')
  return json.loads(result.stdout.strip().splitlines()[-1])


_NUM_SOURCES = flags.DEFINE_string('num_sources', '8,16', 'Values of M to time.')
_MODEL_GIN = flags.DEFINE_string('model_gin', 'models/tdcnpp_paper.gin', 'Model config.')
_LONG_MINUTES = flags.DEFINE_float('long_minutes', 10.0, 'Length of the longest file.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed calls per configuration.')
_THREADS = flags.DEFINE_integer('threads', 0, 'TF threads; 0: TF default.')
_MAX_CHUNK_SECONDS = flags.DEFINE_float('max_chunk_seconds', 20.0, 'Streaming window (s).')
_OVERLAP = flags.DEFINE_float('overlap', 2.0, 'Streaming overlap (s).')
_SKIP_LONG = flags.DEFINE_boolean('skip_long', False, 'No long files.')
_SKIP_LITERT = flags.DEFINE_boolean('skip_litert', False, 'No .tflite export and no LiteRT rows.')
_QUICK = flags.DEFINE_boolean('quick', False, 'Smoke run: M = 8 only, 3 repeats, no long files.')
_PROFILE = flags.DEFINE_boolean('profile', False,
                                'Also print which parts and ops of the network take the time.')
# Worker mode (internal).
_WORKER = flags.DEFINE_enum('worker', None, ['export', 'short', 'litert', 'file', 'profile'],
                            'Internal: run one measurement in this process.')
_LITERT_THREADS = flags.DEFINE_integer('litert_threads', 1,
                                       "Internal: the LiteRT worker's TF and interpreter threads.")
_KIND = flags.DEFINE_string('kind', 'saved_model', 'Internal: what a worker times.')
_M = flags.DEFINE_integer('m', None, 'Internal: M of a worker.')
_MODEL_DIR = flags.DEFINE_string('model_dir', None, "Internal: a worker's model dir.")
_EXPORT_DIR = flags.DEFINE_string('export_dir', None, "Internal: a worker's export dir.")
_INPUT = flags.DEFINE_string('input', None, "Internal: a worker's input file.")


def main(argv) -> None:
  del argv
  args = types.SimpleNamespace(**{name: flags.FLAGS[name].value for name in (
      'num_sources', 'model_gin', 'long_minutes', 'repeats', 'threads', 'max_chunk_seconds',
      'overlap', 'skip_long', 'skip_litert', 'quick', 'profile', 'worker', 'kind', 'm',
      'model_dir', 'export_dir', 'input', 'litert_threads')})
  if args.quick:
    args.num_sources, args.repeats, args.skip_long = '8', 3, True

  if args.worker:
    os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
    worker = {'export': _worker_export, 'short': _worker_short, 'litert': _worker_litert,
              'file': _worker_file, 'profile': _worker_profile}
    print(json.dumps(worker[args.worker](args)))
    return

  rows = []
  litert_rows = []
  profiles = {}
  with tempfile.TemporaryDirectory() as scratch:
    files = {}
    if not args.skip_long:
      for minutes in sorted({1 / 6, 1.0, args.long_minutes}):
        files[minutes] = os.path.join(scratch, f'{minutes * 60:g}s.wav')
        _write_test_file(files[minutes], minutes)
    for m in [int(v) for v in args.num_sources.split(',')]:
      model_dir = os.path.join(scratch, f'model_{m}')
      export_dir = os.path.join(scratch, f'export_{m}')
      info = _spawn(args, worker='export', m=m, model_dir=model_dir, export_dir=export_dir)
      print(f'M={m}: {info["num_parameters"] / 1e6:.2f} M parameters, exported in '
            f'{info["export_seconds"]:.1f} s', file=sys.stderr)
      timings = _spawn(args, worker='short', model_dir=model_dir, export_dir=export_dir)
      print(f'  10 s: {timings}', file=sys.stderr)
      rows.append({
          'M': m, 'audio': '10 s', 'path': 'SavedModel signature, one call',
          'seconds': timings['saved_model_min'], 'rtf': timings['saved_model_min'] / 10,
          'cpu_rtf': timings['saved_model_cpu'] / 10,
          'vs_keras': timings['saved_model_min'] / timings['keras_function_min'],
          'model_share': 1.0, 'peak_rss_mb': None,
          'baseline_rss_mb': None, 'file_mb': info['saved_model_bytes'] / 2**20,
          'extra': (f'best of {args.repeats}; medians: SavedModel '
                    f'{timings["saved_model"]:.3f} s, Keras tf.function '
                    f'{timings["keras_function"]:.3f} s (median pair ratio '
                    f'{timings["ratio_median"]:.2f}x), eager '
                    f'{timings["keras_eager"]:.3f} s; max |SavedModel - Keras| '
                    f'{timings["max_abs_difference"]:.1e}'),
      })
      for threads in ([] if args.skip_litert else LITERT_THREADS):
        result = _spawn(args, worker='litert', export_dir=export_dir, litert_threads=threads)
        print(f'  LiteRT, {threads} threads: {result}', file=sys.stderr)
        litert_rows.append({'M': m, **result,
                            'saved_model_bytes': info['saved_model_bytes']})
      if args.profile:
        profiles[m] = _spawn(args, worker='profile', export_dir=export_dir)
        print(f'  profile: {profiles[m]}', file=sys.stderr)
      for minutes, path in files.items():
        result = _spawn(args, worker='file', export_dir=export_dir, input=path)
        print(f'  {minutes * 60:g} s file: {result}', file=sys.stderr)
        rows.append({
            'M': m, 'audio': f'{minutes * 60:g} s', 'path': 'mixit-separate file, streamed',
            'seconds': result['seconds'], 'rtf': result['seconds'] / result['audio_seconds'],
            'cpu_rtf': result['cpu_seconds'] / result['audio_seconds'],
            'vs_keras': None, 'model_share': result['model_seconds'] / result['seconds'],
            'peak_rss_mb': result['peak_rss_mb'], 'baseline_rss_mb': result['baseline_rss_mb'],
            'file_mb': None,
            'extra': f'{result["windows"]} windows of {args.max_chunk_seconds:g} s',
        })

  print(f'\nCPU: {os.cpu_count()} logical cores, TF threads: {args.threads or "default"}; '
        f'model: {args.model_gin}\n')
  print('| M | audio | path | model file (MB) | time (s) | RTF | CPU s per audio s | vs Keras | '
        'model share | RSS after load (MB) | peak RSS (MB) | notes |')
  # 10 s rows: best of the interleaved repeats (the least disturbed by other
  # processes); SavedModel / Keras is best over best. CPU s per audio s is the
  # process's CPU time (all threads), which other load inflates far less. vs Keras:
  # the row's time over the in-memory Keras tf.function's.
  print('|---|---|---|---|---|---|---|---|---|---|---|---|')
  for r in rows:
    vs = f'{r["vs_keras"]:.2f}x' if r['vs_keras'] is not None else ''
    base = f'{r["baseline_rss_mb"]:.0f}' if r['baseline_rss_mb'] is not None else ''
    peak = f'{r["peak_rss_mb"]:.0f}' if r['peak_rss_mb'] is not None else ''
    size = f'{r["file_mb"]:.1f}' if r['file_mb'] is not None else ''
    print(f'| {r["M"]} | {r["audio"]} | {r["path"]} | {size} | {r["seconds"]:.3f} | '
          f'{r["rtf"]:.4f} | '
          f'{r["cpu_rtf"]:.4f} | '
          f'{vs} | {100 * r["model_share"]:.0f}% | {base} | {peak} | '
          f'{r["extra"]} |')

  if litert_rows:
    _print_litert_table(litert_rows, args.repeats)

  for m, profile in profiles.items():
    print(f'\nM={m}, one 10 s call, share of summed op time ({profile["total_ms"]:.0f} ms):')
    print('| network part | share | | op type | share |')
    print('|---|---|---|---|---|')
    for (part, p_share), (op, o_share) in zip(profile['parts'], profile['ops']):
      print(f'| {part} | {100 * p_share:.1f}% | | {op} | {100 * o_share:.1f}% |')


if __name__ == '__main__':
  app.run(main)
