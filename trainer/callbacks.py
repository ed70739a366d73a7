"""Callbacks that watch a `Trainer`: a rich progress bar, a CSV of epoch metrics, TensorBoard scalars."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from trainer.engine import Callback, Trainer

LOSS_KEYS = ("total", "iou", "obj", "cls", "l1")


class ProgressBar(Callback):
    """One bar per epoch: iterations, elapsed, ETA of the epoch, and the running loss terms and lr; a
    second bar over all epochs gives the ETA of the run."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 TextColumn("{task.fields[info]}"))
        self.run_task: Any = None
        self.epoch_task: Any = None

    def before_train(self, trainer: Trainer) -> None:
        self.progress.start()
        self.run_task = self.progress.add_task("run", total=trainer.cfg.epochs, completed=trainer.start_epoch,
                                               info="")

    def before_epoch(self, trainer: Trainer) -> None:
        mode = " no-aug" if trainer.no_aug else ""
        self.epoch_task = self.progress.add_task(f"epoch {trainer.epoch + 1}/{trainer.cfg.epochs}{mode}",
                                                 total=trainer.iters_per_epoch, info="")

    def after_iter(self, trainer: Trainer) -> None:
        terms = " ".join(f"{k} {trainer.epoch_losses[k]:.3f}" for k in LOSS_KEYS
                         if k in trainer.epoch_losses and (k != "l1" or trainer.no_aug))
        self.progress.update(self.epoch_task, advance=1, info=f"{terms} lr {trainer.lr:.2e}")

    def after_epoch(self, trainer: Trainer) -> None:
        ev = trainer.last_eval
        info = f"mAP {ev.map:.3f} mAP50 {ev.map50:.3f}" if ev else ""
        self.progress.update(self.run_task, advance=1, info=info)
        self.progress.remove_task(self.epoch_task)
        self.progress.console.print(f"epoch {trainer.epoch + 1}/{trainer.cfg.epochs}: loss "
                                    f"{trainer.epoch_losses.get('total', 0):.3f}  {info}  ({trainer.epoch_time:.1f}s)")

    def after_train(self, trainer: Trainer) -> None:
        self.progress.stop()


def epoch_row(trainer: Trainer) -> dict[str, Any]:
    """The metrics of the finished epoch as one flat row."""
    ev = trainer.last_eval
    row: dict[str, Any] = {"epoch": trainer.epoch + 1, "lr": trainer.lr, "time_s": round(trainer.epoch_time, 3)}
    row.update({f"loss_{k}": trainer.epoch_losses.get(k, 0.0) for k in LOSS_KEYS})
    row["num_fg"] = trainer.epoch_losses.get("num_fg", 0.0)
    row["map"] = ev.map if ev else ""
    row["map50"] = ev.map50 if ev else ""
    return row


class CSVLogger(Callback):
    """Appends one row per epoch to ``<output>/metrics.csv`` (kept across --resume)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None

    def after_epoch(self, trainer: Trainer) -> None:
        path = self.path or trainer.output / "metrics.csv"
        row = epoch_row(trainer)
        new = not path.is_file()
        with path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)


class TensorBoardLogger(Callback):
    """Loss terms and lr every `every` iterations, mAP per evaluated epoch, in ``<output>/tensorboard``."""

    def __init__(self, every: int = 10) -> None:
        self.every = every
        self.writer: Any = None

    def before_train(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported here: it is slow to import

        self.writer = SummaryWriter(str(trainer.output / "tensorboard"))

    def after_iter(self, trainer: Trainer) -> None:
        if trainer.global_iter % self.every == 0:
            for key in LOSS_KEYS:
                self.writer.add_scalar(f"train/{key}", trainer.losses.get(key, 0.0), trainer.global_iter)
            self.writer.add_scalar("train/lr", trainer.lr, trainer.global_iter)

    def after_epoch(self, trainer: Trainer) -> None:
        if trainer.last_eval is not None:
            self.writer.add_scalar("val/mAP", trainer.last_eval.map, trainer.epoch + 1)
            self.writer.add_scalar("val/mAP50", trainer.last_eval.map50, trainer.epoch + 1)
        self.writer.flush()

    def after_train(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()


def default_callbacks(progress: bool = True, tensorboard: bool = True) -> list[Callback]:
    """What `streamyolox train` attaches on the main process."""
    callbacks: list[Callback] = [CSVLogger()]
    if progress:
        callbacks.append(ProgressBar())
    if tensorboard:
        callbacks.append(TensorBoardLogger())
    return callbacks
