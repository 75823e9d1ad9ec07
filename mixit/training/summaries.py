"""The TensorBoard summaries of a training run, written with core TF ops.

TF >= 2.21 no longer installs the `tensorboard` package that `tf.summary.scalar/audio` need,
and the events must be readable by TensorBoard wherever it runs, so the plugin metadata is
built here: scalars (`write_scalar`) and WAV clips (`write_audio`) in the default summary
writer; `write_train` (the training step's scalars, in `train/`) and `write_validation`
(the validation scores and audio clips, in `eval/`) are what the loop writes.
"""
from typing import Dict, Optional

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name='scalars'))
# AudioPluginData {version: 0, encoding: WAV (11)}: field 2, varint 11.
_AUDIO_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name='audio',
                                                       content=b'\x10\x0b'))


def write_scalar(name: str, value: float, step: int) -> None:
  """A TensorBoard scalar in the default summary writer."""
  tf.summary.write(name, tf.constant(value, tf.float32), step=step, metadata=_SCALAR_METADATA)


def write_audio(name: str, waveforms: np.ndarray, sample_rate: int, step: int) -> None:
  """Writes `waveforms` [k, time] as k WAV clips, each peak-normalised for listening."""
  waveforms = np.asarray(waveforms, np.float32)
  peak = np.max(np.abs(waveforms), axis=-1, keepdims=True)
  waveforms = np.clip(waveforms / np.maximum(peak, 1e-8), -1.0, 1.0)
  encoded = [tf.audio.encode_wav(w[:, None], sample_rate) for w in waveforms]
  labels = [tf.constant(f'{name} {i}') for i in range(len(encoded))]
  tensor = tf.stack([tf.stack([clip, label]) for clip, label in zip(encoded, labels)])
  tf.summary.write(name, tensor, step=step, metadata=_AUDIO_METADATA)


def write_train(writer, step: int, logs: Dict[str, float], learning_rate: float,
                steps_per_sec: float, skipped: int) -> None:
  """The training step's logs, the learning rate, the rate and the skipped batches so far."""
  with writer.as_default():
    for name, value in logs.items():
      write_scalar(name, value, step)
    write_scalar('learning_rate', learning_rate, step)
    write_scalar('steps_per_sec', steps_per_sec, step)
    write_scalar('skipped_batches', skipped, step)


def write_validation(writer, step: int, results: Dict[str, float],
                     clips: Optional[Dict[str, np.ndarray]] = None,
                     sample_rate: int = 16000) -> None:
  """The validation scores, then each of `clips` (name -> waveforms [k, time]); flushed."""
  with writer.as_default():
    for name, value in results.items():
      write_scalar(name, value, step)
    for name, waveforms in (clips or {}).items():
      write_audio(name, waveforms, sample_rate, step)
  writer.flush()
