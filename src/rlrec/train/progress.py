"""The progress a training loop shows while it runs (``train.progress``, :mod:`.reporting`).

* ``bar``: a live ``tqdm.auto`` bar on stderr (the widget in a notebook), the latest loss and
  validation value beside it;
* ``lines``: one plain line on stderr every ``progress_every`` steps and at the last one, for logs
  that are files (batch jobs, CI, ``nohup``)::

      sqn/gru step 400/2,000 (20%) | loss 4.1234 | 12.5 steps/s, 3,200 transitions/s | val ndcg_purchase@10 0.1234 (step 400) | 32 s, ETA 128 s

* ``none``: nothing; ``auto``: ``bar`` on a terminal or in a notebook, else ``lines``.

Stability flags and warnings are printed as they come (``bar`` and ``lines``). The rates are wall
clock over the interval since the previous line (validation included).
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from rlrec.train.reporting import ProgressMode

NOTICES = ("stability", "warning")


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (its stderr is no terminal, yet shows a widget)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def resolve_mode(mode: ProgressMode, stream: IO[str]) -> ProgressMode:
    """``auto`` → ``bar`` on a terminal or in a notebook, else ``lines``."""
    if mode != "auto":
        return mode
    tty = getattr(stream, "isatty", lambda: False)()
    return "bar" if tty or in_notebook() else "lines"


class ProgressReporter:
    """Progress of one training session: :meth:`start`, :meth:`advance` after every step,
    :meth:`record` with every logged record, :meth:`close`.

    ``unit``: what a step is called (``step``, ``iteration``); ``train_fields``: the keys of
    ``train`` records to show (those present); ``val_key``: the validation value to show;
    ``per_step``: ``(count, name)`` of what one step processes, for a second rate (e.g. ``(256,
    "transitions")``).
    """

    def __init__(
        self,
        mode: ProgressMode,
        every: int,
        label: str,
        *,
        unit: str = "step",
        train_fields: tuple[str, ...] = ("loss",),
        val_key: str | None = None,
        per_step: tuple[int, str] | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.mode = resolve_mode(mode, self.stream)
        self.every = every
        self.label, self.unit = label, unit
        self.train_fields, self.val_key, self.per_step = train_fields, val_key, per_step
        self.total = 0
        self._train: dict[str, Any] = {}
        self._val: tuple[int, float | None] | None = None
        self._bar: Any = None
        self._t0 = self._t_last = 0.0
        self._step0 = self._step_last = 0

    def start(self, step: int, total: int) -> None:
        """The session begins at ``step`` of ``total`` (a resumed run starts part-way)."""
        self.total = total
        self._t0 = self._t_last = time.perf_counter()
        self._step0 = self._step_last = step
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total,
                initial=step,
                desc=self.label,
                unit=self.unit,
                file=self.stream,
            )

    def advance(self, step: int) -> None:
        """Step ``step`` is done (its records already passed to :meth:`record`)."""
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
        elif self.mode == "lines" and (step % self.every == 0 or step == self.total):
            self._print(self.line(step))

    def record(self, kind: str, step: int, values: dict[str, Any]) -> None:
        """A logged record: ``train`` and ``val`` update what is shown; notices are printed."""
        if kind == "train":
            self._train = {k: values[k] for k in self.train_fields if k in values}
        elif kind == "val" and self.val_key is not None:
            self._val = (step, values.get(self.val_key))
        elif kind in NOTICES and self.mode != "none":
            label = "unstable" if kind == "stability" else "warning"
            self._print(f"{self.label} {label}: {values.get('message', '')}")
            return
        else:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(" | ".join(self._state()), refresh=False)

    def line(self, step: int) -> str:
        """The plain progress line at ``step`` (resets the interval its rates cover)."""
        now = time.perf_counter()
        rate = (step - self._step_last) / max(now - self._t_last, 1e-9)
        self._t_last, self._step_last = now, step
        share = f" ({100 * step / self.total:.0f}%)" if self.total else ""
        parts = [f"{self.label} {self.unit} {step:,}/{self.total:,}{share}", *self._state()]
        speed = f"{rate:,.1f} {self.unit}s/s"
        if self.per_step is not None:
            speed += f", {rate * self.per_step[0]:,.0f} {self.per_step[1]}/s"
        parts.insert(2 if self._train else 1, speed)
        elapsed = now - self._t0
        done = step - self._step0
        eta = f", ETA {elapsed / done * (self.total - step):,.0f} s" if done else ""
        parts.append(f"{elapsed:,.0f} s{eta}")
        return " | ".join(parts)

    def _state(self) -> list[str]:
        """The latest train values and validation value, as shown."""
        parts = []
        if self._train:
            parts.append(", ".join(f"{k} {_number(v)}" for k, v in self._train.items()))
        if self._val is not None:
            parts.append(
                f"val {self.val_key} {_number(self._val[1])} ({self.unit} {self._val[0]:,})"
            )
        return parts

    def _print(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _number(value: Any) -> str:
    return "–" if value is None else f"{float(value):.4f}"
