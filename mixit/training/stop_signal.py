"""Stopping a run cleanly on SIGTERM or SIGINT (preemption).

A preemptible VM or TPU, Kubernetes and Slurm send SIGTERM before they kill a job. While a
`StopSignal` is installed, SIGTERM and SIGINT only set a flag; the training loop checks it
after each step, saves a checkpoint at that step, and ends with `Interrupted` (exit status
128 + the signal number: 143 for SIGTERM, 130 for SIGINT). A rerun resumes at exactly that
step. A second signal while the checkpoint is being written is remembered, not acted on.

Multi-worker: the flag of every worker is all-reduced (max) after each step, so that all of
them stop at the same step and save together (a save is a collective); the checkpoint in the
model dir is the chief's, as for every save. Handlers can only be installed from the main
thread; elsewhere (a library caller's thread) nothing is installed and signals keep their
default effect.
"""
import signal
import threading
from typing import Dict, Optional

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(Exception):
  """The run stopped on a signal after saving its checkpoint; `exit_status` is 128 + signum."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.signum = signum
    self.exit_status = 128 + signum


class StopSignal:
  """A context manager: while inside, SIGTERM / SIGINT set `received` instead of killing."""

  def __init__(self):
    self.received: Optional[int] = None
    self._previous: Dict[int, object] = {}

  def _handle(self, signum, frame):
    del frame
    if self.received is None:
      self.received = signum

  def __enter__(self) -> 'StopSignal':
    if threading.current_thread() is threading.main_thread():
      for signum in STOP_SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

  @property
  def name(self) -> str:
    return signal.Signals(self.received).name if self.received else ''
