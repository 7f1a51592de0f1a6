"""Training history (one record per epoch) and the early-stopping rule (§4.4.1).

Early stopping watches a validation quantity and stops once it has not improved
for ``patience`` epochs; "improved" means better than the best so far by more than
``min_delta``. With ``restore_best`` the returned parameters are those of the best
epoch, not the last one: the point where validation error was lowest, before the
model started to fit the training set's noise.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    Args:
      monitor: a history key, e.g. ``"val_loss"`` (default) or ``"val_accuracy"``.
      patience: epochs without improvement before stopping (>= 1).
      min_delta: the smallest change that counts as an improvement (>= 0).
      mode: ``"min"`` (smaller is better), ``"max"`` (larger is better) or ``"auto"``: inferred
        only for names it knows (see ``infer_mode``): losses, errors, ``mse``/``mae``/``rmse``
        -> ``"min"``; accuracy, ``auc``, ``f1``, precision, recall -> ``"max"``. Any other
        monitor needs an explicit ``mode``.
      restore_best: return the parameters and state of the best epoch.

    Raises:
      ValueError/TypeError: for a non-positive patience, negative min_delta, an unknown mode, or
        ``mode="auto"`` with a monitor whose direction it cannot tell (asking for ``mode=``).
    """

    monitor: str = "val_loss"
    patience: int = 5
    min_delta: float = 0.0
    mode: str = "auto"
    restore_best: bool = True

    def __post_init__(self):
        if not isinstance(self.monitor, str) or not self.monitor:
            raise TypeError(f"EarlyStopping: monitor must be a history key such as 'val_loss', got {self.monitor!r}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
            raise ValueError(f"EarlyStopping: patience must be an int >= 1, got {self.patience!r}")
        try:
            delta = float(self.min_delta)
        except (TypeError, ValueError):
            raise TypeError(f"EarlyStopping: min_delta must be a number, got {self.min_delta!r}") from None
        if not math.isfinite(delta) or delta < 0:
            raise ValueError(f"EarlyStopping: min_delta must be a finite number >= 0, got {self.min_delta!r}")
        if self.mode not in ("min", "max", "auto"):
            raise ValueError(f"EarlyStopping: mode must be 'min', 'max' or 'auto', got {self.mode!r}")
        if self.mode == "auto" and infer_mode(self.monitor) is None:
            raise ValueError(
                f"EarlyStopping: cannot tell whether {self.monitor!r} should go down or up; "
                "give mode='min' (smaller is better) or mode='max' (larger is better)"
            )
        object.__setattr__(self, "min_delta", delta)
        object.__setattr__(self, "restore_best", bool(self.restore_best))

    @property
    def minimize(self) -> bool:
        """Whether smaller values of ``monitor`` are better."""
        return (self.mode if self.mode != "auto" else infer_mode(self.monitor)) == "min"


_MIN_WORDS = ("loss", "error", "err", "mse", "mae", "rmse", "nll", "perplexity", "distance")
_MAX_WORDS = ("accuracy", "acc", "auc", "f1", "precision", "recall")


def infer_mode(monitor: str) -> str | None:
    """``"min"`` or ``"max"`` for a monitor name it knows, else ``None``.

    The name is split into words at ``_`` (``val_`` and ``train_`` prefixes ignored); a word
    naming a loss or an error (``loss``, ``error``, ``err``, ``mse``, ``mae``, ``rmse``, ``nll``,
    ``perplexity``, ``distance``) means ``"min"``, one naming a score (``accuracy``, ``acc``,
    ``auc``, ``f1``, ``precision``, ``recall``) ``"max"``; names with both or neither are unknown.
    """
    words = set(monitor.lower().split("_"))
    lo, hi = bool(words & set(_MIN_WORDS)), bool(words & set(_MAX_WORDS))
    if lo == hi:
        return None
    return "min" if lo else "max"


@dataclasses.dataclass
class History:
    """What happened in training: ``records`` holds one dict per epoch.

    Each record has ``"epoch"`` (1-based), ``"loss"`` and the training metrics (means over
    the epoch's steps, computed before each update), ``"val_loss"`` and ``"val_<metric>"``
    when there is validation data, and ``"time"`` (wall seconds). ``history["val_loss"]``
    gives one column as a list.

    Attributes:
      stop_reason: ``None`` (ran all epochs), ``"early_stopping"`` or ``"nonfinite"``.
      best_epoch: the epoch whose parameters were restored by early stopping, else ``None``.
      nonfinite: ``{"epoch": e, "step": s}`` (1-based epoch, 0-based step within it) of the
        first non-finite loss or parameter, else ``None``.
    """

    records: list = dataclasses.field(default_factory=list)
    stop_reason: str | None = None
    best_epoch: int | None = None
    nonfinite: dict | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, name: str) -> list:
        if not self.records or name not in self.records[0]:
            have = sorted(self.records[0]) if self.records else []
            raise KeyError(f"History has no column {name!r}; columns: {have}")
        return [r[name] for r in self.records]

    def keys(self) -> list:
        return list(self.records[0]) if self.records else []

    def __contains__(self, name: object) -> bool:
        # Without it, ``in`` would fall back to __getitem__(0), __getitem__(1), ... and raise KeyError.
        return name in self.keys()

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": [dict(r) for r in self.records],
            "stop_reason": self.stop_reason,
            "best_epoch": self.best_epoch,
            "nonfinite": self.nonfinite,
        }

    @classmethod
    def from_dict(cls, d: dict) -> History:
        if not isinstance(d, dict) or not isinstance(d.get("records"), list):
            raise ValueError(f"History.from_dict: expected a dict with a 'records' list, got {type(d).__name__}")
        return cls([dict(r) for r in d["records"]], d.get("stop_reason"), d.get("best_epoch"), d.get("nonfinite"))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def copy(self) -> History:
        return History.from_dict(self.to_dict())
