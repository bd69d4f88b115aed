"""Transformers trainer callbacks (imported lazily): early stopping on validation NDCG@k, and
a progress bar that keeps the loss log to the run's records instead of printing it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from hybridrank.evaluate import ndcg_at_k

logger = logging.getLogger(__name__)


class NDCGEarlyStopping(TrainerCallback):
    """Score the validation rows, track NDCG@k, keep the best weights, stop on a plateau.

    Evaluates the starting weights (step 0) before the first step, then every
    ``eval_steps`` steps, or at each epoch's end when ``eval_steps`` is None.
    At the end of training the best evaluated weights are loaded back into
    ``model``, so a fit never returns weights that score below its starting
    point on the validation rows.

    Attributes:
        history: ``(global_step, mean NDCG@k)`` per evaluation.
        best: The best mean NDCG@k seen (-inf before any evaluation).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        score_fn: Callable[[], np.ndarray],
        labels: np.ndarray,
        qid: np.ndarray,
        *,
        k: int,
        patience: int | None,
        eval_steps: int | None,
    ) -> None:
        self.model = model
        self.score_fn = score_fn
        self.labels = labels
        self.qid = qid
        self.k = k
        self.patience = patience
        self.eval_steps = eval_steps
        self.history: list[tuple[int, float]] = []
        self.best = -np.inf
        self.best_step = 0
        self._best_state: dict[str, torch.Tensor] | None = None
        self._bad = 0

    def _evaluate(self, state: Any, control: Any) -> None:
        was_training = self.model.training
        self.model.eval()
        with torch.no_grad():
            scores = self.score_fn()
        if was_training:
            self.model.train()
        value = float(np.nanmean(ndcg_at_k(scores, self.labels, qid=self.qid, k=self.k)))
        step = int(state.global_step)
        self.history.append((step, value))
        logger.info("step %d: validation NDCG@%d %.4f", step, self.k, value)
        if value > self.best + 1e-9:
            self.best, self.best_step, self._bad = value, step, 0
            self._best_state = {
                name: t.detach().clone() for name, t in self.model.state_dict().items()
            }
            return
        self._bad += 1
        if self.patience is not None and self._bad >= self.patience:
            logger.info(
                "early stop at step %d: no NDCG@%d gain in %d evaluations", step, self.k, self._bad
            )
            control.should_training_stop = True

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if not self.history:
            self._evaluate(state, control)
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.eval_steps is not None and state.global_step % self.eval_steps == 0:
            self._evaluate(state, control)
        return control

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.eval_steps is None:
            self._evaluate(state, control)
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.history and self.history[-1][0] != int(state.global_step):
            self._evaluate(state, control)  # the last steps ran after the last evaluation
        if self._best_state is not None and self.history and self.history[-1][1] < self.best:
            self.model.load_state_dict(self._best_state)
            logger.info(
                "restored the best weights (step %d, NDCG@%d %.4f)",
                self.best_step,
                self.k,
                self.best,
            )
        return control


class QuietProgress(ProgressCallback):
    """The trainer's progress bar without a printed line per logged loss (about 100 a fit):
    the losses stay in the trainer's ``log_history``, hence in ``loss_history_`` and the
    run's ``folds.json`` and loss plot."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> Any:
        return control


def quiet_logs(trainer: Any) -> Any:
    """``trainer`` with its logged losses kept but not printed (see :class:`QuietProgress`)."""
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgress)
    trainer.pop_callback(PrinterCallback)  # the line printer used without a progress bar
    return trainer
