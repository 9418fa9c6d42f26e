"""The pre-training loop: plain PyTorch, resumable to the exact step, data-parallel by torchrun
or srun.

Determinism: every micro-batch draws its randomness (chunk choice, negatives, masks,
dropout) from seeds derived from (seed, epoch, batch), and the batch plan of an epoch is a
function of (seed, epoch). ``last.ckpt`` is written only at optimiser-step boundaries, with
the position in the epoch, so a run killed at any moment and started again repeats exactly
the steps an uninterrupted run takes. Validation uses fixed seeds, so its loss is comparable
across epochs. ``best.ckpt`` is the inference model at the lowest validation loss;
``checkpoints/epoch<N>.ckpt`` the one after every ``keep_checkpoint_every_epochs`` epochs.
Both record the wall-clock training time so far (``train_seconds``, carried over resumes):
learning curves plot scores against it.

SIGTERM and SIGUSR1 stop training at the next optimiser step (scpc.train.stop_signals): every
process agrees on that step, last.ckpt is written, and fit() raises StoppedBySignal.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel

from scpc.audio import SAMPLE_RATE
from scpc.config import DEFAULTS, Config, dump, merge
from scpc.data.batch_plan import bucketed_plan, budget_batches, epoch_plan, rank_offset, rank_part
from scpc.data.chunking import Chunking
from scpc.data.featdir_dataset import collate
from scpc.data.loader import open_dataset, read_batches
from scpc.data.shards import ShardBatches, ShardSource, is_shard_source
from scpc.errors import ScpcError
from scpc.frontend import frontend_from_config
from scpc.models.checkpoint import save_inference_checkpoint
from scpc.nn.amp import amp_dtype, autocast, grad_scaler
from scpc.progress import progress_bar
from scpc.progress import quiet as quiet_env
from scpc.train import distributed
from scpc.train.metrics import Curve, MetricsLog, plot_curves, points
from scpc.train.model import PretrainModel
from scpc.train.run_log import RunLog
from scpc.train.schedule import make_optimizer, set_lr
from scpc.train.seeds import mix
from scpc.train.state import TrainingState, git_commit
from scpc.train.stop_signals import StopSignals, stop_training

STATE_FORMAT = "scpc-train-state-1"


def complete_saved_config(state: dict[str, Any]) -> dict[str, Any]:
    """A training state saved by an older scpc, its config completed with the keys added to
    the defaults since (their defaults keep the old behaviour), so that it still resumes."""
    try:
        saved = yaml.safe_load(state["config"])
        state = {**state, "config": dump(merge(DEFAULTS, saved, "last.ckpt"))}
    except (ScpcError, yaml.YAMLError, AttributeError, TypeError):
        pass  # not a config this scpc can complete: the identity check reports it
    return state


@dataclass
class Progress:
    epoch: int = 0
    batch: int = 0  # next micro-batch of the epoch's plan
    step: int = 0  # optimiser steps taken
    best_val: float = float("inf")
    bad_epochs: int = 0
    stopped: bool = False
    window: dict[str, float] = field(default_factory=lambda: {"loss": 0.0, "acc": 0.0, "n": 0.0})
    # shard streaming: batches consumed per reader this epoch, and each process's next reader
    stream: dict[str, dict[str, int]] = field(default_factory=dict)
    # wall-clock seconds of training and validation so far, over resumes (learning curves)
    train_seconds: float = 0.0


def utterance_ids(ds, items) -> list[str]:
    """The utterance ids of a batch's dataset items (index, or a stream's (id, speaker))."""
    out = []
    for item in items:
        key = item[2]
        out.append(str(key[0]) if isinstance(key, (tuple, list)) else str(ds.uttids[int(key)]))
    return out


class Trainer:
    def __init__(
        self,
        config: Config,
        train_dir: str | os.PathLike,
        val_dir: str | os.PathLike,
        exp_dir: str | os.PathLike,
        quiet: bool = False,
    ) -> None:
        self.config, self.t = config, config["training"]
        if self.t["max_steps"] == 0:
            raise ScpcError(
                "training.max_steps is 0: nothing to train; scpc-init model writes a config's "
                "initialisation as best.ckpt (run.sh does this for such configs)"
            )
        if self.t["keep_checkpoint_every_epochs"] < 0:
            raise ScpcError(
                "training.keep_checkpoint_every_epochs must be 0 (none) or a number of epochs, "
                f"not {self.t['keep_checkpoint_every_epochs']}"
            )
        self.exp = Path(exp_dir)
        self.quiet = quiet or quiet_env()
        self._clock = time.perf_counter()
        self.d = distributed.setup(self.t["device"])
        torch.manual_seed(self.t["seed"])
        ch = self.t["chunking"]
        self.chunking = Chunking(
            ch["policy"],
            window_type=ch["window_type"],
            lobe_size=ch["lobe_size"],
            pad_mode=ch["pad_mode"],
            pad_constant=ch["pad_constant"],
            max_chunks=ch["max_chunks"],
        )
        with_ali = ch["policy"] == "ali"
        # a data dir (features computed on the fly), a feature dir (precomputed), or shards
        self.stream: ShardBatches | None = None
        if is_shard_source(train_dir) and self.t["shard_access"] == "stream":
            self.train_ds = self._open_stream(train_dir, with_ali)
        else:
            self.train_ds = open_dataset(train_dir, config.get("frontend"), with_ali)
        # Spin logs PNMI against the validation set's phone alignments when it has them
        self.val_alignments = (
            config["training"]["loss_type"] == "spin"
            and ch["policy"] == "none"
            and ((Path(val_dir) / "ali").is_dir() or (Path(val_dir) / "ali.txt").is_file())
        )
        self.val_ds = open_dataset(val_dir, config.get("frontend"), with_ali or self.val_alignments)
        self._check_frontend(self.train_ds)
        self._check_frontend(self.val_ds)
        if self.val_ds.feat_size != self.train_ds.feat_size:
            raise ScpcError(
                f"{val_dir}: {self.val_ds.feat_size} features per frame but {train_dir} has "
                f"{self.train_ds.feat_size}"
            )
        speakers = sorted(set(self.train_ds.utt2spk.values()))
        self.speaker_ids = {s: i + 1 for i, s in enumerate(speakers)}  # 0: unseen speaker
        self.model = PretrainModel(config, self.train_ds.feat_size, len(speakers)).to(self.d.device)
        if ch["policy"] == "fixed" and self.chunking.window < self.model.min_input_frames:
            raise ScpcError(
                f"chunking windows of {self.chunking.window} frames are shorter than the "
                f"{self.model.min_input_frames} the loss needs"
            )
        self.optimizer = make_optimizer(self.model.parameters(), self.t)
        self.amp_dtype = amp_dtype(self.t["amp"], self.d.device)
        self.scaler = grad_scaler(self.d.device, self.amp_dtype)
        self.ddp = (
            DistributedDataParallel(
                self.model, device_ids=[self.d.device] if self.d.device.type == "cuda" else None
            )
            if self.d.world_size > 1
            else None
        )
        self.progress = Progress()
        # non-finite steps: the current group's utterances, whether its losses were finite,
        # and how many steps in a row were skipped
        self._group_utts: list[str] = []
        self._group_finite = True
        self._nonfinite_steps = 0
        self.stop = StopSignals()
        self.metrics = MetricsLog(self.exp / "metrics.csv", tensorboard=self.exp / "tb")
        self.state = TrainingState(self.exp / "last.ckpt", STATE_FORMAT, "an scpc training state")
        self._run_log = RunLog(self.exp / "train.log", quiet=self.quiet)
        self.plan_len = self._stream_steps() if self.stream else len(self._plan(0))
        if self.plan_len == 0:
            raise ScpcError(
                f"{train_dir}: {len(self.train_ds)} utterances do not fill one batch of "
                f"{self.t['batch_size']} x {self.d.world_size} processes"
            )

    # ----------------------------------------------------------------- set-up helpers
    def _check_frontend(self, ds) -> None:
        want, have = self.config.get("frontend"), ds.frontend_config
        if want is not None and want != have:
            raise ScpcError(
                f"{ds.root}/frontend.json does not match the model's front-end "
                f"({self.config['feat_type']}); recompute the features or use another version"
            )

    def _open_stream(self, path, with_ali: bool) -> ShardSource:
        frontend = self.config.get("frontend")
        if frontend is None:
            raise ScpcError(f"{path}: shards need the model's front-end (a frozen model.yaml)")
        source = ShardSource(path, frontend)
        if source.index is None and not self.t["max_steps"]:
            raise ScpcError(
                f"{path}: no shards.json beside the list: set training.max_steps (the epoch "
                "length is unknown)"
            )
        budget = None
        if self.t["batch_seconds"]:  # per process: streams have no global batches
            spf = frontend_from_config(frontend).frame_shift / SAMPLE_RATE
            budget = self.t["batch_seconds"] / self.d.world_size / spf
        self.stream = ShardBatches(
            source.shards,
            frontend,
            batch_size=self.t["batch_size"],
            budget_frames=budget,
            seed=self.t["seed"],
            rank=self.d.rank,
            world_size=self.d.world_size,
            buffer=self.t["shuffle_buffer"],
            with_ali=with_ali,
        )
        return source

    def _stream_steps(self) -> int:
        """Micro-batches per epoch and process, estimated from the shard index."""
        src = self.train_ds
        if src.index is None:
            return self.t["max_steps"] * self.t["accumulate_grad_batches"]
        if self.t["batch_seconds"]:
            return max(1, round(src.seconds / self.t["batch_seconds"]))
        return src.utterances // (self.t["batch_size"] * self.d.world_size)

    def _budget_frames(self) -> float:
        """``batch_seconds`` in the training set's frames."""
        return self.t["batch_seconds"] / self._seconds_per_frame()

    def _plan(self, epoch: int) -> list[list[int]]:
        if self.t["batch_seconds"]:
            return bucketed_plan(
                self.train_ds.lengths,
                self._budget_frames(),
                seed=self.t["seed"],
                epoch=epoch,
                shuffle=self.t["shuffle"],
            )
        return epoch_plan(
            self.train_ds.lengths,
            batch_size=self.t["batch_size"],
            world_size=self.d.world_size,
            seed=self.t["seed"],
            epoch=epoch,
            shuffle=self.t["shuffle"],
        )

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.plan_len // self.t["accumulate_grad_batches"])

    @property
    def total_steps(self) -> int | None:
        by_epochs = self.steps_per_epoch * self.t["max_epochs"]
        return min(by_epochs, self.t["max_steps"] or by_epochs)

    # ----------------------------------------------------------------- state
    def _modules(self) -> dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer, "scaler": self.scaler}

    def _tick(self) -> None:
        """Add the time since the last tick to the progress's training time."""
        now = time.perf_counter()
        self.progress.train_seconds += now - self._clock
        self._clock = now

    def save_last(self) -> None:
        self._tick()
        if self.stream is not None and self.d.world_size > 1:
            self.progress.stream = distributed.merge_positions(self.progress.stream, self.d)
        if self.d.main:
            identity = {"config": dump(self.config), "world_size": self.d.world_size}
            self.state.save(self._modules(), asdict(self.progress), identity)
        distributed.barrier(self.d)

    def restore(self) -> bool:
        saved = self.state.restore(
            self._modules(),
            {
                "config": (
                    dump(self.config),
                    "saved with a different model.yaml; move it away to start afresh",
                ),
                "world_size": (
                    self.d.world_size,
                    f"saved by another number of processes than {self.d.world_size}; "
                    "the batch plan would change",
                ),
            },
            self.d.device,
            upgrade=complete_saved_config,
        )
        if saved is None:
            return False
        self.progress = Progress(**{**saved, "window": dict(saved["window"])})
        return True

    def save_best(self, val_loss: float) -> None:
        self._save_inference(self.exp / "best.ckpt", val_loss)

    def _save_inference(self, path: Path, val_loss: float) -> None:
        if not self.d.main:
            return
        provenance = {
            "name": self.config["name"],
            "version": self.exp.name,
            "train_data": os.fspath(self.train_ds.root),
            "model_yaml": dump(self.config),
            "git_commit": git_commit(),
            "epoch": self.progress.epoch,
            "step": self.progress.step,
            "val_loss": val_loss,
            "train_seconds": round(self.progress.train_seconds, 3),
            "speakers": sorted(self.speaker_ids),
        }
        frontend = self.config.get("frontend") or self.train_ds.frontend_config
        path.parent.mkdir(parents=True, exist_ok=True)
        save_inference_checkpoint(path, self.model.encoder(), frontend, provenance)

    # ----------------------------------------------------------------- one batch
    def _batch(self, ds, items, seed: int, ids_offset: int):
        feats, lens, alis, ids = collate(items)
        g = torch.Generator().manual_seed(seed)
        chunks, chunk_lens, sources = self.chunking(
            feats, lens, alis, g, self.model.min_input_frames
        )
        # a chunk's own seed depends on its utterance's place in the global batch and its
        # ordinal among that utterance's chunks, not on which process holds it
        ordinal = torch.zeros_like(sources)
        for k in range(1, len(sources)):
            ordinal[k] = ordinal[k - 1] + 1 if sources[k] == sources[k - 1] else 0
        utt_seeds = torch.tensor(
            [mix(seed, ids_offset + int(s), int(o)) for s, o in zip(sources, ordinal)],
            dtype=torch.long,
        )
        if self.stream is not None and ds is self.train_ds:  # items carry (id, speaker)
            of_item = [self.speaker_ids.get(meta[1], 0) for _, _, meta in items]
        else:
            of_item = [self.speaker_ids.get(ds.utt2spk.get(ds.uttids[int(i)], ""), 0) for i in ids]
        spk = torch.tensor([of_item[int(s)] for s in sources], dtype=torch.long)
        dev = self.d.device
        return chunks.to(dev), chunk_lens.to(dev), spk.to(dev), g, utt_seeds, sources

    def _epoch_batches(self, accum: int):
        """This process's micro-batches of the epoch from the saved position on: (items,
        offset of its utterances in the global batch, micro-batches in its accumulation group,
        whether it ends the group, whether more follow in this epoch)."""
        p = self.progress
        if self.stream is not None:
            yield from self._stream_batches(accum)
            return
        plan = self._plan(p.epoch)
        fetched = self._read(
            self.train_ds,
            [rank_part(b, self.d.rank, self.d.world_size) for b in plan[p.batch :]],
        )
        for b in range(p.batch, len(plan)):
            items = next(fetched)
            offset = rank_offset(len(plan[b]), self.d.rank, self.d.world_size)
            start, end = b // accum * accum, min((b // accum + 1) * accum, len(plan))
            yield items, offset, end - start, b + 1 == end, b + 1 < len(plan)

    def _stream_batches(self, accum: int):
        """Batches of the shard stream; the epoch ends when any process's readers run out
        (the processes agree on every step). The position is recorded before a batch trains,
        so a state saved after its step resumes with the next one."""
        p, rank, world = self.progress, str(self.d.rank), self.d.world_size
        workers = max(self.t["num_workers"], 1)
        skip = {int(r): n for r, n in p.stream.get("readers", {}).items()}
        self.stream.set_epoch(p.epoch, skip, p.stream.get("first", {}).get(rank, 0))
        loader = torch.utils.data.DataLoader(
            self.stream,
            batch_size=None,
            num_workers=self.t["num_workers"],
            pin_memory=self.d.device.type == "cuda",
        )

        def everyone(ok: bool) -> bool:
            return distributed.all_sum([float(ok)], self.d)[0] == world

        it = iter(loader)
        upcoming = next(it, None)
        while everyone(upcoming is not None):
            reader, ordinal, items = upcoming
            upcoming = next(it, None)
            more = everyone(upcoming is not None)
            readers = p.stream.setdefault("readers", {})
            readers[str(reader)] = ordinal + 1
            p.stream.setdefault("first", {})[rank] = (reader % workers + 1) % workers
            b = p.batch
            yield items, self.d.rank << 20, accum, (b + 1) % accum == 0 or not more, more

    def _chunk_share(self, count: int) -> float:
        """This process's chunks over the mean per process (1 with one process)."""
        if self.d.world_size == 1:
            return 1.0
        (total,) = distributed.all_sum([float(count)], self.d)
        return count * self.d.world_size / total if total else 1.0

    def _read(self, ds, batches: list[list[int]]):
        """The items of this process's index batches, read ahead by the data workers."""
        return read_batches(
            ds, batches, self.t["num_workers"], pin_memory=self.d.device.type == "cuda"
        )

    def _forward(self, module, chunks, chunk_lens, spk, g, utt_seeds, alis=None):
        with autocast(self.d.device, self.amp_dtype):
            if len(chunks) == 0:  # nothing long enough: a zero loss keeps processes in step
                zero = sum(p.sum() for p in self.model.parameters()) * 0.0
                return {"loss": zero, "accuracy": zero.detach()}
            if alis is not None:
                return module(chunks, chunk_lens, spk, g, utt_seeds, alis)
            return module(chunks, chunk_lens, spk, g, utt_seeds)

    # ----------------------------------------------------------------- validation
    @torch.no_grad()
    def validate(self) -> tuple[float, float]:
        self.model.eval()
        ds, size = self.val_ds, self.t["batch_size"]
        order = sorted(range(len(ds)), key=lambda i: ds.lengths[i])
        if self.t["batch_seconds"]:
            batches = budget_batches(order, ds.lengths, self._budget_frames())
        else:
            batches = [
                order[i : i + size * self.d.world_size]
                for i in range(0, len(order), size * self.d.world_size)
            ]
        total = correct = count = 0.0
        mine_of = [batch[self.d.rank :: self.d.world_size] for batch in batches]
        fetched = self._read(ds, [m for m in mine_of if m])
        for b, mine in enumerate(mine_of):
            if not mine:
                continue
            seed = mix(self.t["seed"], "valid", b)
            torch.manual_seed(seed)
            items = next(fetched)
            chunks, chunk_lens, spk, g, utt_seeds, sources = self._batch(ds, items, seed, 0)
            if len(chunks) == 0:
                continue
            alis = None
            if self.val_alignments:  # whole utterances: chunk k is item sources[k]
                alis = [items[int(s)][1] for s in sources]
            out = self._forward(self.model, chunks, chunk_lens, spk, g, utt_seeds, alis)
            total += float(out["loss"]) * len(chunks)
            correct += float(out["accuracy"]) * len(chunks)
            count += len(chunks)
        total, correct, count = distributed.all_sum([total, correct, count], self.d)
        self.model.train()
        if count == 0:
            raise ScpcError(f"{ds.root}: no validation utterance is long enough for the loss")
        return total / count, correct / count

    # ----------------------------------------------------------------- the loop
    def log(self, message: str) -> None:
        if self.d.main:
            self._run_log(message)

    def fit(self) -> Path | None:
        """Train to the end (or resume and finish); the best model's path, if any."""
        try:
            with self.stop:
                return self._fit()
        finally:
            distributed.teardown(self.d)

    def _stop_if_asked(self, saved: bool) -> None:
        """At a step boundary: if any process got a stop signal, save (unless ``saved`` just
        now) and stop them all."""
        signum = distributed.any_flag(self.stop.requested, self.d)
        if not signum:
            return
        p = self.progress
        save = (lambda: None) if saved else self.save_last
        where = f"epoch {p.epoch}, step {p.step}"
        stop_training(
            signum, step=p.step, where=where, save=save, state=self.exp / "last.ckpt", log=self.log
        )

    def _fit(self) -> Path | None:
        self.exp.mkdir(parents=True, exist_ok=True)
        resumed = self.restore()
        self._clock = time.perf_counter()
        p = self.progress
        if self.d.main:
            if resumed:  # rows written after the saved state come again
                self.metrics.keep(
                    lambda r: (r["split"] == "train" and int(r["step"]) <= p.step)
                    or (r["split"] == "valid" and int(r["epoch"]) < p.epoch)
                )
            else:
                self.metrics.remove()
        n_params = sum(x.numel() for x in self.model.parameters())
        start = f"resuming at epoch {p.epoch}, step {p.step}" if resumed else "starting"
        self.log(
            f"{start}: "
            f"{self.config['name']} {self.exp}, {len(self.train_ds)} training utterances, "
            f"{n_params:,} parameters, {self.d.world_size} process(es) on {self.d.device}"
        )
        module = self.ddp or self.model
        accum = self.t["accumulate_grad_batches"]
        self.model.train()
        while not p.stopped and p.epoch < self.t["max_epochs"]:
            bar = progress_bar(
                total=self.plan_len,
                initial=p.batch,
                desc=f"epoch {p.epoch}",
                unit="batch",
                disable=self.quiet or not self.d.main,
            )
            tic, audio = time.perf_counter(), 0.0
            for items, offset, group_size, last_of_group, more in self._epoch_batches(accum):
                b = p.batch
                seed = mix(self.t["seed"], p.epoch, b)
                torch.manual_seed(seed)
                chunks, chunk_lens, spk, g, utt_seeds, _ = self._batch(
                    self.train_ds, items, seed, offset
                )
                sync = (
                    self.ddp.no_sync()
                    if self.ddp is not None and not last_of_group
                    else contextlib.nullcontext()
                )
                # DDP averages the processes' gradients: each process's mean counts by its
                # share of the global batch's chunks (shares differ with batch_seconds)
                share = self._chunk_share(len(chunks))
                with sync:
                    out = self._forward(module, chunks, chunk_lens, spk, g, utt_seeds)
                    loss = out["loss"] * share / group_size
                    self.scaler.scale(loss).backward()
                self._group_utts += utterance_ids(self.train_ds, items)
                if torch.isfinite(out["loss"]):
                    p.window["loss"] += float(out["loss"].detach())
                    p.window["acc"] += float(out["accuracy"])
                    p.window["n"] += 1
                else:  # the group's step is skipped (_optimizer_step)
                    self._group_finite = False
                audio += float(chunk_lens.sum())
                p.batch += 1
                # no refresh of its own: a log file gets a line per mininterval, not per batch
                bar.set_postfix(
                    loss=f"{float(out['loss'].detach()):.3f}", step=p.step, refresh=False
                )
                bar.update(1)
                if last_of_group:
                    lr = self._optimizer_step()
                    if lr is None:  # non-finite: skipped
                        continue
                    if p.step % self.t["log_every_steps"] == 0 and self.d.main:
                        w = p.window
                        rate = audio * self._seconds_per_frame() / (time.perf_counter() - tic)
                        self.metrics.append(
                            split="train",
                            epoch=p.epoch,
                            step=p.step,
                            loss=w["loss"] / max(w["n"], 1),
                            accuracy=w["acc"] / max(w["n"], 1),
                            lr=lr,
                            audio_per_s=rate * self.d.world_size,
                        )
                    if p.step % self.t["log_every_steps"] == 0:
                        p.window = {"loss": 0.0, "acc": 0.0, "n": 0.0}
                    if self.t["max_steps"] and p.step >= self.t["max_steps"]:
                        p.stopped = True
                        break
                    saved = p.step % self.t["checkpoint_every_steps"] == 0 and more
                    if saved:
                        self.save_last()
                    self._stop_if_asked(saved)
            bar.close()
            self._end_epoch()  # saves last.ckpt
            if not p.stopped and p.epoch < self.t["max_epochs"]:
                self._stop_if_asked(saved=True)
        if self.d.main:
            self._plot()
            self.metrics.close()
        best = self.exp / "best.ckpt"
        if self.d.main and not best.is_file():  # never a success without the model
            raise ScpcError(f"training ended without {best} (no validation epoch finished)")
        self.log(
            f"done: best validation loss {p.best_val:.4f}; best.ckpt {best}; curves "
            f"{self.exp / 'curves.png'}"
        )
        return best

    def _plot(self) -> None:
        rows = self.metrics.rows()
        curves = [
            Curve("train", points(rows, "step", "loss", split="train")),
            Curve("valid", points(rows, "step", "loss", split="valid"), "o-"),
        ]
        plot_curves(self.exp / "curves.png", [("loss", curves)])

    def _seconds_per_frame(self) -> float:
        frontend = self.config.get("frontend") or self.train_ds.frontend_config
        return frontend_from_config(frontend).frame_shift / SAMPLE_RATE

    def _optimizer_step(self) -> float | None:
        """The step of a group of micro-batches; its learning rate, or None when a loss or the
        gradient was not finite: then the step is skipped and counted, and
        ``training.max_nonfinite_steps`` such steps in a row stop training (last.ckpt holding
        the last finite state) with one line naming the utterances."""
        p = self.progress
        lr = set_lr(self.optimizer, self.t, p.step, self.total_steps)
        self.scaler.unscale_(self.optimizer)
        # the norm is taken even without clipping: a non-finite one skips the step
        norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), self.t["grad_clip_norm"] or math.inf
        )
        # fp16's scaler skips overflowing steps itself (and lowers its scale): not a fault
        bad = not self._group_finite or (not self.scaler.is_enabled() and not torch.isfinite(norm))
        utts, self._group_utts, self._group_finite = self._group_utts, [], True
        if distributed.any_flag(int(bad), self.d):
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler.is_enabled():
                self.scaler.update()
            self._nonfinite_steps += 1
            limit = self.t["max_nonfinite_steps"]
            shown = ", ".join(utts[:8]) + (f" and {len(utts) - 8} more" if len(utts) > 8 else "")
            self.log(
                f"epoch {p.epoch}, step {p.step}: non-finite loss or gradient; step skipped "
                f"({self._nonfinite_steps} in a row of at most {limit}); utterances: {shown}"
            )
            if self._nonfinite_steps >= limit:
                self.save_last()
                raise ScpcError(
                    f"{limit} training steps in a row had a non-finite loss or gradient (last: "
                    f"epoch {p.epoch}, step {p.step}, utterances {shown}); {self.exp / 'last.ckpt'}"
                    " holds the last finite state. Check those utterances' audio, lower "
                    "training.learning_rate or set training.grad_clip_norm"
                )
            return None
        self._nonfinite_steps = 0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        p.step += 1
        self.model.after_step(p.step, self.total_steps)
        return lr

    def _end_epoch(self) -> None:
        p = self.progress
        val, acc = self.validate()
        self._tick()
        improved = val < p.best_val
        threshold = self.t["early_stopping_threshold"]
        if threshold is not None:
            p.bad_epochs = 0 if val < p.best_val - threshold else p.bad_epochs + 1
            if p.bad_epochs >= self.t["early_stopping_patience"]:
                p.stopped = True
        if improved:
            p.best_val = val
            self.save_best(val)
        if self.d.main:
            self.metrics.append(split="valid", epoch=p.epoch, step=p.step, loss=val, accuracy=acc)
        self.log(
            f"epoch {p.epoch} step {p.step}: validation loss {val:.4f} accuracy {acc:.3f}"
            + self.model.validation_report()
            + (" (best so far)" if improved else "")
            + (" - early stopping" if p.stopped and not self._by_steps() else "")
        )
        keep = self.t["keep_checkpoint_every_epochs"]
        if keep and (p.epoch + 1) % keep == 0:  # named by epochs done
            self._save_inference(self.exp / "checkpoints" / f"epoch{p.epoch + 1}.ckpt", val)
        p.epoch += 1
        p.batch = 0
        p.stream = {}
        self.save_last()
        if self.d.main:
            self._plot()

    def _by_steps(self) -> bool:
        return bool(self.t["max_steps"]) and self.progress.step >= self.t["max_steps"]
