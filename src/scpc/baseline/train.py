"""One training phase of the baseline (``short`` or ``full``), resumable at any point.

A phase trains :class:`~scpc.baseline.model.BaselineModel` with CTC on its utterances (the
``utterances`` shortest of the training set, or all of them), evaluates on dev after every
epoch (CTC loss, and the token error rate of greedy decoding, in percent), and keeps the
model of the lowest dev token error rate as ``<bl>/<phase>/best.pt``. It stops after
``max_epochs`` or when ``early_stopping_patience`` epochs in a row have not improved on the
best by more than ``early_stopping_threshold`` (never before ``early_stopping_burn_in``
epochs). The ``full`` phase starts from ``<bl>/short/best.pt``; SpecAugment (training
batches only, never evaluation) is on where the phase's ``specaug`` says so.

Exact resumption: an epoch's batches depend on (seed, phase, epoch) only and each batch
seeds dropout and SpecAugment from (seed, phase, epoch, batch); ``<bl>/<phase>/last.ckpt``
(model, optimiser, position, running sums) is written every ``checkpoint_every_steps`` steps and at
every epoch's end, so a run killed anywhere and started again takes the steps an
uninterrupted run takes. ``<bl>/metrics.csv`` gets one row per epoch and phase,
``<bl>/tb/<phase>/`` the same as TensorBoard events, ``<bl>/curves.png`` plots it,
``<bl>/train.log`` logs it.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import torch

from scpc.baseline import specaug
from scpc.baseline.bpe import Tokenizer
from scpc.baseline.config import NEUTRAL, PHASES, RENAMED, trained_part
from scpc.baseline.data import RepSet, TrainItems, collate, shortest
from scpc.baseline.model import BaselineModel, infer, load_model, save_model
from scpc.config import Config, dump, upgrade_dump
from scpc.data.batch_plan import bucketed_plan, epoch_plan
from scpc.errors import ScpcError
from scpc.eval.ctc_decode import greedy_decode
from scpc.eval.metrics import error_rate
from scpc.models.inference import resolve_device
from scpc.nn.amp import amp_dtype, autocast, grad_scaler
from scpc.nn.ctc import ctc_loss
from scpc.progress import progress_bar
from scpc.train.metrics import Curve, MetricsLog, plot_curves
from scpc.train.run_log import RunLog
from scpc.train.schedule import make_optimizer
from scpc.train.seeds import mix
from scpc.train.state import TrainingState
from scpc.train.stop_signals import StopSignals, stop_training

STATE_FORMAT = "scpc-baseline-state-1"
COLUMNS = ("phase", "epoch", "step", "train_loss", "dev_loss", "dev_ter", "lr", "seconds")


@dataclass
class Progress:
    epoch: int = 0
    batch: int = 0  # next batch of the epoch
    step: int = 0
    best_ter: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    stopped: bool = False
    loss_sum: float = 0.0  # this epoch's training loss so far
    loss_n: int = 0
    seconds: float = 0.0  # this epoch's training time so far


def ctc_steps_needed(targets: list[int]) -> int:
    """Fewest CTC steps that can emit ``targets``: one each, plus a blank between repeats."""
    return len(targets) + sum(a == b for a, b in zip(targets, targets[1:]))


def trained_config(cfg: Config) -> str:
    """What a resumed run must share with the saved one (the device may change)."""
    part = copy.deepcopy(trained_part(cfg))
    part["train"].pop("device")
    for key, value in NEUTRAL.items():
        if part["train"][key] == value:
            del part["train"][key]
    return dump(part)


class PhaseTrainer:
    def __init__(
        self,
        cfg: Config,
        phase: str,
        bl_dir: str | os.PathLike,
        train: RepSet,
        dev: RepSet,
        tokenizer: Tokenizer,
        stats: dict,
        *,
        log_file: bool = True,
    ) -> None:
        if phase not in PHASES:
            raise ScpcError(f"unknown phase {phase!r} ({', '.join(PHASES)})")
        self.cfg, self.phase, self.p, self.t = cfg, phase, cfg[phase], cfg["train"]
        self.bl = Path(bl_dir)
        self.out = self.bl / phase
        self.log_file = log_file
        self.device = resolve_device(self.t["device"])
        self.tokenizer = tokenizer
        lengths = stats["lengths"]
        unknown = [u for u in train.utts if u not in lengths]
        if unknown:
            raise ScpcError(
                f"the MVN statistics were computed on another training set ({unknown[0]} is "
                "not in them); recompute them"
            )
        self.train = train.subset(
            shortest({u: lengths[u] for u in train.utts}, self.p["utterances"])
        )
        self.lengths = [lengths[u] for u in self.train.utts]
        if self.t["batch_seconds"]:
            self.frame_seconds = self.train.seconds_per_frame(self.lengths)
        self.dev = dev
        self.train_targets = [tokenizer.encode(s) for s in self.train.texts]
        self.dev_targets = [tokenizer.encode(s) for s in dev.texts]
        m = cfg["model"]
        torch.manual_seed(mix(self.t["seed"], phase, "init"))  # the same start every run
        self.model = BaselineModel(
            stats["mean"].numel(),
            num_classes=tokenizer.num_classes,
            hidden_size=m["hidden_size"],
            num_layers=m["num_layers"],
            stack=m["stack"],
            dropout=self.p["dropout"],
        )
        self.model.set_mvn(stats["mean"], stats["std"])
        self.model.to(self.device)
        self.optimizer = make_optimizer(
            self.model.parameters(),
            {
                "optimizer": self.t["optimizer"],
                "learning_rate": self.p["learning_rate"],
                "weight_decay": self.t["weight_decay"],
                "momentum": self.t["momentum"],
            },
        )
        self.augment = specaug.from_config(cfg["specaug"]) if self.p["specaug"] else None
        self.amp_dtype = amp_dtype(self.t["amp"], self.device)
        self.scaler = grad_scaler(self.device, self.amp_dtype)
        self.progress = Progress()
        self.state = TrainingState(
            self.out / "last.ckpt", STATE_FORMAT, "an scpc-baseline training state"
        )
        self.metrics = MetricsLog(self.bl / "metrics.csv", COLUMNS, tensorboard=self.bl / "tb")
        self._run_log = RunLog(self.bl / "train.log", prefix=f"[{phase}] ")
        # what else a resumed run must share: the utterances and the BPE pieces
        ids = "\n".join([*self.train.utts, "", *tokenizer.vocab]).encode()
        self.train_id = hashlib.sha256(ids).hexdigest()[:16]

    # ----------------------------------------------------------------- state
    def _modules(self) -> dict:
        modules = {"model": self.model, "optimizer": self.optimizer}
        if self.scaler.is_enabled():  # float16 on a GPU: the loss scale resumes too
            modules["scaler"] = self.scaler
        return modules

    def save_last(self) -> None:
        identity = {
            "phase": self.phase,
            "config": trained_config(self.cfg),
            "train_id": self.train_id,
        }
        self.state.save(self._modules(), asdict(self.progress), identity, rng=False)

    def restore(self) -> bool:
        saved = self.state.restore(
            self._modules(),
            {
                "config": (
                    trained_config(self.cfg),
                    "saved with another config; move it away to start afresh",
                ),
                "train_id": (
                    self.train_id,
                    "saved with other training utterances or BPE pieces; move it away",
                ),
            },
            self.device,
            upgrade=upgrade_state,
        )
        if saved is None:
            return False
        self.progress = Progress(**saved)
        return True

    def initialise(self, init: str | os.PathLike) -> None:
        """Weights of another phase's model (same architecture and MVN statistics)."""
        model, vocab, _ = load_model(init)
        if model.arch != self.model.arch or vocab != self.tokenizer.vocab:
            raise ScpcError(f"{init}: another architecture or vocabulary than this phase's")
        self.model.load_state_dict(model.state_dict())

    # ----------------------------------------------------------------- logging
    def log(self, message: str) -> None:
        if self.log_file:
            self._run_log(message)
        else:
            print(f"[{self.phase}] {message}", file=sys.stderr)

    # ----------------------------------------------------------------- the loop
    def fit(
        self,
        init: str | os.PathLike | None = None,
        on_step: Callable[[PhaseTrainer], None] | None = None,
    ) -> Path:
        """Train to the end (or resume); returns ``best.pt``. ``on_step`` runs after every step."""
        self.out.mkdir(parents=True, exist_ok=True)
        resumed = self.restore()
        p = self.progress
        if not resumed and init is not None:
            self.initialise(init)
        # this phase's rows from the resumed epoch on come again
        self.metrics.keep(lambda r: r["phase"] != self.phase or int(r["epoch"]) < p.epoch)
        if not p.stopped and p.epoch < self.p["max_epochs"]:
            self._announce(resumed, init)
        with StopSignals() as signals:
            self._epochs(on_step, signals)
        self.metrics.close()
        self.log(
            f"done: best dev token error rate {p.best_ter:.2f}% (epoch {p.best_epoch}); "
            f"{self.out / 'best.pt'}"
        )
        return self.out / "best.pt"

    def _epochs(self, on_step: Callable[[PhaseTrainer], None] | None, signals: StopSignals) -> None:
        p = self.progress
        while not p.stopped and p.epoch < self.p["max_epochs"]:
            plan = self._plan(p.epoch)
            loader = torch.utils.data.DataLoader(
                TrainItems(self.train, self.train_targets),
                batch_sampler=plan[p.batch :],
                collate_fn=collate,
            )
            bar = progress_bar(
                total=len(plan), initial=p.batch, desc=f"{self.phase} epoch {p.epoch}", unit="batch"
            )
            self.model.train()
            tic = time.perf_counter()
            for x, lens, targets in loader:
                self._step(x, lens, targets)
                p.seconds += time.perf_counter() - tic
                tic = time.perf_counter()
                # no refresh of its own: a log file gets a line per mininterval, not per batch
                bar.set_postfix(loss=f"{p.loss_sum / max(p.loss_n, 1):.3f}", refresh=False)
                bar.update(1)
                if on_step is not None:
                    on_step(self)
                if p.step % self.t["checkpoint_every_steps"] == 0 and p.batch < len(plan):
                    self.save_last()
                if signals.requested:
                    bar.close()
                    where, state = f"epoch {p.epoch}, step {p.step}", self.out / "last.ckpt"
                    stop_training(
                        signals.requested,
                        step=p.step,
                        where=where,
                        save=self.save_last,
                        state=state,
                        log=self.log,
                    )
            bar.close()
            self._end_epoch()

    def _plan(self, epoch: int) -> list[list[int]]:
        seed = mix(self.t["seed"], self.phase) % 2**31
        if self.t["batch_seconds"]:
            return bucketed_plan(
                self.lengths, self.t["batch_seconds"] / self.frame_seconds, seed, epoch
            )
        return epoch_plan(
            self.lengths, min(self.t["batch_size"], len(self.lengths)), 1, seed, epoch
        )

    def _announce(self, resumed: bool, init) -> None:
        p = self.progress
        k = self.cfg["model"]["stack"]
        short = sum(
            -(-n // k) < ctc_steps_needed(t) for n, t in zip(self.lengths, self.train_targets)
        )
        start = f"resuming at epoch {p.epoch}, step {p.step}" if resumed else "starting"
        if not resumed and init is not None:
            start += f" from {init}"
        n_params = sum(x.numel() for x in self.model.parameters())
        self.log(
            f"{start}: {len(self.train)} training utterances, {len(self.dev)} dev, "
            f"{self.tokenizer.num_classes} outputs, {n_params:,} parameters, lr "
            f"{self.p['learning_rate']:g}, dropout {self.p['dropout']:g}, SpecAugment "
            f"{'on' if self.augment is not None else 'off'}, on {self.device}"
        )
        if short:
            self.log(
                f"{short} training utterances have fewer CTC steps than their targets need; "
                "they add nothing (lower bpe.vocab_size or model.stack)"
            )

    def _step(self, x: torch.Tensor, lens: torch.Tensor, targets: list[list[int]]) -> None:
        p = self.progress
        seed = mix(self.t["seed"], self.phase, p.epoch, p.batch)
        torch.manual_seed(seed)  # dropout
        augment = None
        if self.augment is not None:
            augment = partial(self.augment, generator=torch.Generator().manual_seed(seed))
        with autocast(self.device, self.amp_dtype):
            logp, olens = self.model(x.to(self.device), lens.to(self.device), augment)
        loss = ctc_loss(logp.float(), olens, targets, self.tokenizer.blank)
        if not torch.isfinite(loss):
            raise ScpcError(
                f"non-finite training loss in {self.phase} epoch {p.epoch}, batch {p.batch}; "
                "lower the learning rate or set train.grad_clip_norm"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.t["grad_clip_norm"]:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.t["grad_clip_norm"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        p.step += 1
        p.batch += 1
        p.loss_sum += float(loss.detach()) * len(targets)
        p.loss_n += len(targets)

    def evaluate(self) -> tuple[float, float]:
        """(CTC loss per target token, greedy token error rate in percent) on dev."""
        total, hyps, refs = 0.0, [], []
        for idx, logp, lens in infer(self.model, self.dev, self.t["eval_batch_size"], self.device):
            targets = [self.dev_targets[i] for i in idx]
            total += float(ctc_loss(logp, lens, targets, self.tokenizer.blank)) * len(idx)
            for b, n in enumerate(lens.tolist()):
                hyps.append(greedy_decode(logp[b, :n], blank=self.tokenizer.blank))
            refs.extend(targets)
        return total / len(self.dev), error_rate(refs, hyps)

    def _end_epoch(self) -> None:
        p = self.progress
        dev_loss, ter = self.evaluate()
        improved = ter < p.best_ter
        if ter < p.best_ter - self.t["early_stopping_threshold"]:
            p.bad_epochs = 0
        else:
            p.bad_epochs += 1
        if improved:
            p.best_ter, p.best_epoch = ter, p.epoch
            save_model(
                self.out / "best.pt",
                self.model,
                self.tokenizer.vocab,
                {
                    "phase": self.phase,
                    "epoch": p.epoch,
                    "step": p.step,
                    "dev_ter": ter,
                    "dev_loss": dev_loss,
                    "train_utterances": len(self.train),
                    "config": trained_config(self.cfg),
                },
            )
        if (
            p.bad_epochs >= self.t["early_stopping_patience"]
            and p.epoch + 1 >= self.t["early_stopping_burn_in"]
        ):
            p.stopped = True
        self.metrics.append(
            phase=self.phase,
            epoch=p.epoch,
            step=p.step,
            train_loss=f"{p.loss_sum / max(p.loss_n, 1):.6g}",
            dev_loss=f"{dev_loss:.6g}",
            dev_ter=f"{ter:.4f}",
            lr=f"{self.p['learning_rate']:g}",
            seconds=f"{p.seconds:.1f}",
        )
        self.log(
            f"epoch {p.epoch} step {p.step}: train loss {p.loss_sum / max(p.loss_n, 1):.3f}, "
            f"dev loss {dev_loss:.3f}, dev token error rate {ter:.2f}%"
            + (" (best so far)" if improved else "")
            + (" - early stopping" if p.stopped else "")
        )
        p.epoch += 1
        p.batch, p.loss_sum, p.loss_n, p.seconds = 0, 0.0, 0, 0.0
        self.save_last()
        plot_phases(self.metrics, self.bl / "curves.png")


def plot_phases(metrics: MetricsLog, png_path: str | os.PathLike) -> None:
    """CTC loss (train, dev) and dev token error rate per epoch, the phases one after another."""
    rows = metrics.rows()
    losses, ters = [], []
    offset = 0
    for phase in PHASES:
        mine = [r for r in rows if r["phase"] == phase]
        if not mine:
            continue
        x = [offset + int(r["epoch"]) + 1 for r in mine]
        for key, style, label in (("train_loss", "-", "train"), ("dev_loss", "o-", "dev")):
            pts = list(zip(x, (float(r[key]) for r in mine)))
            losses.append(Curve(f"{phase} {label}", pts, style))
        ters.append(Curve(phase, list(zip(x, (float(r["dev_ter"]) for r in mine))), "o-"))
        offset = x[-1]
    panels = [("CTC loss per token", losses), ("dev token error rate (%)", ters)]
    plot_curves(png_path, panels, "epoch (phases in turn)")


def upgrade_state(state: dict) -> dict:
    """A state saved before train.clip/save_every were renamed compares as a current one."""
    return {**state, "config": upgrade_dump(state["config"], RENAMED)}
