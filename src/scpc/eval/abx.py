"""ZeroSpeech ABX error (CPU: GEMM blocks and a compiled DTW; GPU: batched torch), following
zerospeech-libriabx2's protocol.

An item file (``#file onset offset #phone prev-phone next-phone speaker`` after one header
line) names phone tokens; item ``k`` of a file covers feature frames
``[max(0, ceil(onset/shift - 0.5)), min(T, floor(offset/shift - 0.5)))``, and items with no
frame are dropped. That leaves out the last frame whose centre lies inside the item, as the
Libri-Light scorer does; ``item_frames="full"`` keeps it (``floor(...) + 1``), as fastabx
does, and then gives fastabx's scores (equal without subsampling; within its sampling noise
with it, since fastabx draws its groups differently). Every frame is L2-normalised (a zero
frame becomes the constant unit vector) and extended by one ``1e-12`` channel, whatever the
distance, as libriabx2 does.

Items are grouped by (context, speaker, phone) for ``context_mode="within"`` (context = previous
and next phone) or by (speaker, phone) for ``"any"``. For each pair of phones A != B of one
speaker (and context), groups of at most ``max_size_group`` items are drawn at random (a new
draw every time a group is used); X comes from A's own group (``speaker_mode="within"``, X != A)
or from the same phone (and context) of up to ``max_x_across`` other speakers (``"across"``).
The error of a triple of groups is the fraction of (a, b, x) with DTW(x, a) > DTW(x, b), ties
counting one half; DTW sums frame distances along the cheapest path and divides by its length.
Errors are averaged over contexts (and X speakers), then speakers, then phone pairs.

The random draws replay libriabx2's exactly (Python's ``random`` seeded once per condition,
the same calls in the same order); with ``file_order="walk"`` the items are also ordered as
libriabx2 orders them (``os.walk`` order of the feature files), which gives its scores to
float precision. The default ``file_order="item"`` orders files by their first line in the
item file, so a score does not depend on the directory listing order.
"""

from __future__ import annotations

import csv
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from scpc.data.alignment import Item, read_items
from scpc.errors import ScpcError
from scpc.io import atomic_write
from scpc.kaldi_tables import KaldiMatrix, is_scp, read_scp
from scpc.tables import aligned

SPEAKER_MODES = ("within", "across")
CONTEXT_MODES = ("within", "any")
# the four (speaker, context) conditions in the order ZeroSpeech reports them
CONDITIONS = (("within", "within"), ("across", "within"), ("within", "any"), ("across", "any"))
DISTANCES = ("cosine", "euclidean", "kl", "kl_symmetric")
# The ZeroSpeech protocol's sampling defaults (zrc_abx2 and zerospeech-benchmarks use the same).
MAX_SIZE_GROUP = 10
MAX_X_ACROSS = 5
SEED = 3459
FEAT_EXTENSIONS = (".pt", ".npy")
# Which frames an item covers: "librilight" as the Libri-Light / ZeroSpeech scorers (and
# libriabx2) cut them, which leaves out the last frame whose centre lies inside the item;
# "full" keeps it, as fastabx does by default (its correction of that scorer).
ITEM_FRAMES = ("librilight", "full")


@dataclass
class ItemSet:
    """Items that cover at least one frame, with their frames and integer labels.

    Label ids number the values in order of first appearance in the item file (dropped items
    included), as libriabx2 numbers them; ``data[starts[k]:starts[k] + lengths[k]]`` holds the
    normalised frames of item ``k``.
    """

    data: torch.Tensor  # (total frames, C + 1) float32
    starts: np.ndarray  # (N,) int64
    lengths: np.ndarray  # (N,) int64
    context: np.ndarray  # (N,) int64
    phone: np.ndarray
    speaker: np.ndarray
    num_lines: int  # items in the item file
    num_dropped: int  # items with no frame

    def __len__(self) -> int:
        return len(self.lengths)


@dataclass(frozen=True)
class ConditionScore:
    speaker_mode: str
    context_mode: str
    error: float  # a fraction in [0, 1]
    num_pairs: int  # (phone A, phone B) pairs averaged in the score
    num_groups: int  # (A, B, X) groups of items scored
    num_triplets: int  # (a, b, x) triplets compared
    num_dtw: int  # distinct DTW alignments computed


@dataclass(frozen=True)
class AbxResult:
    scores: list[ConditionScore]
    distance: str
    num_lines: int
    num_items: int
    num_dropped: int

    def get(self, speaker_mode: str, context_mode: str) -> ConditionScore:
        for s in self.scores:
            if (s.speaker_mode, s.context_mode) == (speaker_mode, context_mode):
                return s
        raise KeyError((speaker_mode, context_mode))


# ----------------------------------------------------------------------------- reading


def read_item_file(path: str | os.PathLike) -> list[Item]:
    """The items of a ZeroSpeech item file; a malformed line is an error naming file:line."""
    items = read_items(path)
    if not items:
        raise ScpcError(f"{path}: no items")
    return items


def find_feature_files(feat_dir: str | os.PathLike) -> dict[str, Path | KaldiMatrix]:
    """``<file id>: path`` of every .pt/.npy file under ``feat_dir``, in ``os.walk`` order;
    or, when ``feat_dir`` is a Kaldi feats.scp, its entries in file order."""
    if is_scp(feat_dir):
        return dict(read_scp(feat_dir))
    if not Path(feat_dir).is_dir():
        raise ScpcError(f"{feat_dir}: not a directory (nor a Kaldi feats.scp)")
    out: dict[str, Path] = {}
    for root, _dirs, names in os.walk(feat_dir):
        for name in names:
            stem, ext = os.path.splitext(name)
            if ext in FEAT_EXTENSIONS:
                if stem in out:
                    raise ScpcError(
                        f"{feat_dir}: two feature files for {stem}: {out[stem]}, {name}"
                    )
                out[stem] = Path(root) / name
    return out


def load_features(path: Path | KaldiMatrix) -> torch.Tensor:
    """A (T, C) feature matrix from a .pt or .npy file, or a Kaldi table's entry."""
    try:
        if isinstance(path, KaldiMatrix):
            x = torch.from_numpy(path.read())
        elif path.suffix == ".npy":
            x = torch.from_numpy(np.load(path))
        else:
            x = torch.load(path, map_location="cpu", weights_only=True)
    except ScpcError:
        raise
    except Exception as e:  # noqa: BLE001 - any unreadable file is one line
        raise ScpcError(f"{path}: cannot read features ({e})") from None
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_floating_point():
        what = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ScpcError(f"{path}: expected a 2-D float (frames, dim) array, got {what}")
    if not torch.isfinite(x).all():
        raise ScpcError(f"{path}: features contain NaN or infinite values")
    return x


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Unit-norm frames plus a 1e-12 channel (zero frames: constant unit vector, -2e12)."""
    norm = (x**2).sum(dim=1, keepdim=True)
    x = x / torch.sqrt(norm)
    zero = (norm == 0).view(-1)
    x[zero] = 1 / math.sqrt(x.shape[1])
    border = torch.full((x.shape[0], 1), 1e-12, dtype=x.dtype)
    border[zero] = -2 * 1e12
    return torch.cat([x, border], dim=1)


def frame_range(
    onset: float, offset: float, num_frames: int, step: float, item_frames: str = "librilight"
) -> tuple[int, int]:
    """Frames ``[start, end)`` of an item (``step`` = frames per second); see ITEM_FRAMES.

    "librilight" rounds in binary floating point, as libriabx2 does; "full" in decimal, as
    fastabx does (it reads times as decimals), so times on a 5 ms grid, half-way between two
    frame centres, are cut as each of them cuts them.
    """
    if item_frames == "full":
        rate = Decimal(repr(step))
        start = max(0, math.ceil(Decimal(repr(onset)) * rate - Decimal("0.5")))
        end = min(num_frames, math.floor(Decimal(repr(offset)) * rate - Decimal("0.5")) + 1)
        return int(start), int(end)
    start = max(0, int(math.ceil(step * onset - 0.5)))
    end = int(min(num_frames, int(math.floor(step * offset - 0.5))))
    return start, end


def load_items(
    item_file: str | os.PathLike,
    feat_dir: str | os.PathLike,
    frame_shift: float = 0.01,
    file_order: Literal["item", "walk"] = "item",
    item_frames: str = "librilight",
) -> ItemSet:
    """Read the item file and cut every item's normalised frames out of its file's features."""
    if item_frames not in ITEM_FRAMES:
        raise ScpcError(
            f"unknown item frames {item_frames!r}; choose from {', '.join(ITEM_FRAMES)}"
        )
    items = read_item_file(item_file)
    ids: list[dict[str, int]] = [{}, {}, {}]
    by_file: dict[str, list[tuple[Item, int, int, int]]] = {}
    for it in items:
        c, p, s = (
            d.setdefault(k, len(d))
            for d, k in zip(ids, (f"{it.prev}+{it.next}", it.phone, it.speaker))
        )
        by_file.setdefault(it.file, []).append((it, c, p, s))
    files = find_feature_files(feat_dir)
    missing = [f for f in by_file if f not in files]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ScpcError(
            f"{feat_dir}: no feature file {missing[0]}.pt or .npy (or feats.scp entry){more}, "
            f"named by {item_file}"
        )
    order = [f for f in files if f in by_file] if file_order == "walk" else list(by_file)
    step = 1 / frame_shift
    chunks, starts, lengths, labels = [], [], [], []
    dim, total = None, 0
    for f in order:
        x = load_features(files[f])
        if dim is None:
            dim = (x.shape[1], files[f])
        elif x.shape[1] != dim[0]:
            raise ScpcError(
                f"{files[f]}: features of dimension {x.shape[1]}, but {dim[1]} has {dim[0]}"
            )
        x = normalise(x).float()
        for it, c, p, s in by_file[f]:
            start, end = frame_range(it.onset, it.offset, x.shape[0], step, item_frames)
            if start >= x.shape[0] or end <= start:
                continue
            chunks.append(x[start:end])
            starts.append(total)
            lengths.append(end - start)
            labels.append((c, p, s))
            total += end - start
    if not chunks:
        raise ScpcError(f"{item_file}: no item covers a feature frame (check --frame-shift)")
    lab = np.array(labels, dtype=np.int64)
    return ItemSet(
        torch.cat(chunks),
        np.array(starts, dtype=np.int64),
        np.array(lengths, dtype=np.int64),
        lab[:, 0],
        lab[:, 1],
        lab[:, 2],
        len(items),
        len(items) - len(chunks),
    )


# ----------------------------------------------------------------------------- sampling


@dataclass
class _Tasks:
    """Groups of item indices (padded with -1) to score, and the label each error is kept under."""

    x: np.ndarray  # (T, M)
    a: np.ndarray
    b: np.ndarray
    keys: np.ndarray  # (T, 3): speaker, phone A, phone B (the averaging levels)


def sample_tasks(
    items: ItemSet,
    speaker_mode: str,
    context_mode: str,
    max_size_group: int = MAX_SIZE_GROUP,
    max_x_across: int = MAX_X_ACROSS,
    seed: int = SEED,
) -> tuple[_Tasks, bool]:
    """The (X, A, B) groups of one condition, drawn as libriabx2 draws them; and whether X = A."""
    within_ctx = context_mode == "within"
    n = len(items)
    cols = (
        (items.context, items.speaker, items.phone) if within_ctx else (items.speaker, items.phone)
    )
    order = np.lexsort(cols[::-1])  # stable: ties keep item order
    keys = np.stack([c[order] for c in cols], axis=1)
    cut = np.flatnonzero((keys[1:] != keys[:-1]).any(axis=1)) + 1
    bounds = np.concatenate([[0], cut, [n]])
    # blocks: runs of one (context,) speaker, each a list of (phone, start, end)
    blocks: list[tuple[tuple[int, ...], list[tuple[int, int, int]]]] = []
    others: dict[tuple[int, ...], dict[int, tuple[int, int]]] = {}
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        k = tuple(int(v) for v in keys[lo])
        outer, phone = k[:-1], k[-1]
        if not blocks or blocks[-1][0] != outer:
            blocks.append((outer, []))
        blocks[-1][1].append((phone, int(lo), int(hi)))
        others.setdefault((*outer[:-1], phone), {})[outer[-1]] = (int(lo), int(hi))

    rng = random.Random(seed)

    def take(lo: int, hi: int) -> np.ndarray:
        if hi - lo > max_size_group:
            return order[rng.sample(range(lo, hi), k=max_size_group)]
        return order[lo:hi]

    xs, as_, bs, labels = [], [], [], []
    for outer, runs in blocks:
        if len(runs) == 1:
            continue
        spk = outer[-1]
        for ia, (pa, lo_a, hi_a) in enumerate(runs):
            if speaker_mode == "within":
                if hi_a - lo_a == 1:
                    continue
                for ib, (pb, lo_b, hi_b) in enumerate(runs):
                    if ib != ia:
                        b = take(lo_b, hi_b)
                        a = take(lo_a, hi_a)
                        xs.append(a), as_.append(a), bs.append(b), labels.append((spk, pa, pb))
                continue
            ref = [v for s, v in others[(*outer[:-1], pa)].items() if s != spk]
            chosen = rng.sample(ref, k=max_x_across) if len(ref) > max_x_across else ref
            for lo_x, hi_x in chosen:
                for ib, (pb, lo_b, hi_b) in enumerate(runs):
                    if ib != ia:
                        a = take(lo_a, hi_a)
                        b = take(lo_b, hi_b)
                        x = take(lo_x, hi_x)
                        xs.append(x), as_.append(a), bs.append(b), labels.append((spk, pa, pb))
    width = max((len(g) for g in xs + as_ + bs), default=1)

    def pad(groups: list[np.ndarray]) -> np.ndarray:
        out = np.full((len(groups), width), -1, dtype=np.int64)
        for i, g in enumerate(groups):
            out[i, : len(g)] = g
        return out

    tasks = _Tasks(pad(xs), pad(as_), pad(bs), np.array(labels, dtype=np.int64).reshape(-1, 3))
    return tasks, speaker_mode == "within"


# ----------------------------------------------------------------------------- distances


def frame_distances(u: torch.Tensor, v: torch.Tensor, distance: str) -> torch.Tensor:
    """(B, N, C) and (B, M, C) frames to (B, N, M) frame distances."""
    if distance == "cosine":  # in place: the CPU path's matrices are large
        return torch.bmm(u, v.transpose(1, 2)).clamp_(-1, 1).acos_().div_(math.pi)
    if distance == "euclidean":
        return torch.sqrt(((u[:, :, None] - v[:, None]) ** 2).sum(dim=3))
    p, q, eps = u[:, :, None], v[:, None], 1e-6
    if distance == "kl":
        return (p * ((p + eps) / (q + eps)).log()).sum(dim=3)
    if distance == "kl_symmetric":
        kl_pq = p * ((p + eps) / (q + eps)).log()
        kl_qp = q * ((q + eps) / (p + eps)).log()
        return (0.5 * kl_pq + 0.5 * kl_qp).sum(dim=3)
    raise ScpcError(f"unknown ABX distance {distance!r}; choose from {', '.join(DISTANCES)}")


def dtw(dist: torch.Tensor, n: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Path-length-normalised DTW of a padded batch of (B, N, M) distance matrices.

    Pair ``k`` uses ``dist[k, :n[k], :m[k]]``. Steps are (1, 0), (0, 1), (1, 1); among equal
    costs the diagonal predecessor wins, then (i, j-1), then (i-1, j), as in libriabx2's
    backtrace. Runs over anti-diagonals, so a batch takes N + M - 1 vector steps.
    """
    bsz, rows, cols = dist.shape
    dev, diags = dist.device, rows + cols - 1
    # cost[d, :, i + 1] is cell (i, d - i); column 0 and cells off the matrix stay infinite
    cost = torch.full((diags, bsz, rows + 1), float("inf"), dtype=dist.dtype, device=dev)
    steps = torch.zeros((diags, bsz, rows + 1), dtype=dist.dtype, device=dev)
    cost[0, :, 1] = dist[:, 0, 0]
    steps[0, :, 1] = 1
    for d in range(1, diags):
        lo, hi = max(0, d - cols + 1), min(d, rows - 1) + 1  # rows i in [lo, hi)
        i = torch.arange(lo, hi, device=dev)
        here = dist[:, i, d - i]
        up, left, diag = (
            cost[d - 1, :, lo:hi],
            cost[d - 1, :, lo + 1 : hi + 1],
            cost[d - 2, :, lo:hi],
        )
        up_n, left_n = steps[d - 1, :, lo:hi], steps[d - 1, :, lo + 1 : hi + 1]
        take_diag = (diag <= left) & (diag <= up)
        take_left = (left <= up) & ~take_diag
        best = torch.where(take_diag, diag, torch.where(take_left, left, up))
        torch.add(here, best, out=cost[d, :, lo + 1 : hi + 1])
        diag_n = steps[d - 2, :, lo:hi]  # at d = 1 this is the last diagonal: not yet written
        n_best = torch.where(take_diag, diag_n, torch.where(take_left, left_n, up_n))
        torch.add(n_best, 1, out=steps[d, :, lo + 1 : hi + 1])
    k = torch.arange(bsz, device=dev)
    last = (n + m - 2).to(dev), n.to(dev)
    return cost[last[0], k, last[1]] / steps[last[0], k, last[1]]


def pair_dtw(
    items: ItemSet,
    u: np.ndarray,
    v: np.ndarray,
    distance: str = "cosine",
    device: str | torch.device = "cpu",
    cells: int | None = None,
) -> np.ndarray:
    """DTW(u[k], v[k]) for item index arrays ``u``, ``v``.

    On the CPU: the frames of a block of ``u`` items against those of all their partners, one
    distance matrix per block (one GEMM for cosine), and the compiled DTW of every pair on its
    part of it (:mod:`scpc.eval.dtw_kernel`). On a GPU: pairs batched by similar lengths, padded,
    and the anti-diagonal :func:`dtw`. Both give the same values (tests compare them).
    ``cells`` bounds the memory of one step: frame pairs of a block's distance matrix on the
    CPU (default 2^25), padded DTW cells of a batch on a GPU.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return _pair_dtw_blocks(items, u, v, distance, cells or 1 << 25)
    return _pair_dtw_padded(items, u, v, distance, device, cells)


def _frame_index(items: ItemSet, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``items.data`` holding items ``which`` one after another, and each item's offset."""
    lengths = items.lengths[which]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    idx = np.repeat(items.starts[which] - offsets, lengths) + np.arange(int(lengths.sum()))
    return idx, offsets


def _pair_dtw_blocks(
    items: ItemSet, u: np.ndarray, v: np.ndarray, distance: str, cells: int
) -> np.ndarray:
    from scpc.eval.dtw_kernel import dtw_pairs

    out = np.zeros(len(u), dtype=np.float32)
    if len(u) == 0:
        return out
    data = items.data
    order = np.argsort(u, kind="stable")
    us, vs = u[order], v[order]
    # each block: consecutive u items whose frames times all frames fit the budget
    per_cell = 1 if distance == "cosine" else data.shape[1]
    max_rows = max(1, cells // (data.shape[0] * per_cell))
    first = np.flatnonzero(np.r_[True, us[1:] != us[:-1]])  # first pair of each u item
    rows_before = np.cumsum(items.lengths[us[first]]) - items.lengths[us[first]]
    block_of_item = rows_before // max_rows
    edges = first[np.flatnonzero(np.r_[True, block_of_item[1:] != block_of_item[:-1]])]
    for lo, hi in zip(edges, np.r_[edges[1:], len(us)]):
        bu, bv = us[lo:hi], vs[lo:hi]
        row_items, u_pos = np.unique(bu, return_inverse=True)
        col_items, v_pos = np.unique(bv, return_inverse=True)
        row_idx, row_off = _frame_index(items, row_items)
        col_idx, col_off = _frame_index(items, col_items)
        rows = data.index_select(0, torch.from_numpy(row_idx))
        cols = data.index_select(0, torch.from_numpy(col_idx))
        dist = frame_distances(rows[None], cols[None], distance)[0].contiguous().numpy()
        got = np.empty(hi - lo, dtype=np.float32)
        dtw_pairs(dist, row_off[u_pos], items.lengths[bu], col_off[v_pos], items.lengths[bv], got)
        out[order[lo:hi]] = got
    return out


def _pair_dtw_padded(
    items: ItemSet,
    u: np.ndarray,
    v: np.ndarray,
    distance: str,
    device: torch.device,
    cells: int | None,
) -> np.ndarray:
    if cells is None:
        cells = 1 << (24 if device.type == "cuda" else 19)
    if distance != "cosine":  # these materialise (B, N, M, C)
        cells = max(1, cells * 8 // items.data.shape[1])
    data = items.data.to(device)
    out = np.zeros(len(u), dtype=np.float32)
    lu, lv = items.lengths[u], items.lengths[v]
    # buckets of lengths within ~25 % of each other; padded to the bucket's longest pair
    bu, bv = np.ceil(np.log(lu) / np.log(1.25)), np.ceil(np.log(lv) / np.log(1.25))
    order = np.lexsort((lv, lu, bv, bu))
    bucket = (bu * 1000 + bv)[order]
    edges = np.flatnonzero(np.diff(bucket)) + 1
    for idx in np.split(order, edges):
        rows, cols = int(lu[idx].max()), int(lv[idx].max())
        size = max(1, cells // (rows * cols))
        for k in range(0, len(idx), size):
            sub = idx[k : k + size]
            fu = _frames(data, items, u[sub], rows, device)
            fv = _frames(data, items, v[sub], cols, device)
            n = torch.as_tensor(lu[sub], device=device)
            m = torch.as_tensor(lv[sub], device=device)
            out[sub] = dtw(frame_distances(fu, fv, distance), n, m).cpu().numpy()
    return out


def _frames(
    data: torch.Tensor, items: ItemSet, which: np.ndarray, width: int, device: torch.device
) -> torch.Tensor:
    """(B, width, C) frames of items ``which``, padded by repeating their last frame."""
    pos = np.minimum(np.arange(width)[None], items.lengths[which][:, None] - 1)
    idx = torch.as_tensor((items.starts[which][:, None] + pos).ravel(), device=device)
    return data.index_select(0, idx).view(len(which), width, data.shape[1])


# ----------------------------------------------------------------------------- scoring


def group_errors(
    items: ItemSet,
    tasks: _Tasks,
    symmetric: bool,
    distance: str = "cosine",
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, int, int]:
    """Error of every (X, A, B) group; also the triplet and distinct-DTW counts."""
    num, width = tasks.x.shape
    if num == 0:
        return np.zeros(0), 0, 0
    tri = (
        np.triu(np.ones((width, width), dtype=bool), k=1)
        if symmetric
        else np.ones((width, width), dtype=bool)
    )
    xa_mask = (tasks.x[:, :, None] >= 0) & (tasks.a[:, None, :] >= 0) & tri
    xb_mask = (tasks.x[:, :, None] >= 0) & (tasks.b[:, None, :] >= 0)
    xa_u, xa_v = (
        np.broadcast_to(tasks.x[:, :, None], xa_mask.shape),
        np.broadcast_to(tasks.a[:, None, :], xa_mask.shape),
    )
    xb_u, xb_v = (
        np.broadcast_to(tasks.x[:, :, None], xb_mask.shape),
        np.broadcast_to(tasks.b[:, None, :], xb_mask.shape),
    )
    n_items = len(items)
    pair_keys = np.concatenate(
        [xa_u[xa_mask] * n_items + xa_v[xa_mask], xb_u[xb_mask] * n_items + xb_v[xb_mask]]
    )
    uniq, inverse = np.unique(pair_keys, return_inverse=True)
    values = pair_dtw(items, uniq // n_items, uniq % n_items, distance, device)[inverse]
    n_xa = int(xa_mask.sum())
    dxa = np.zeros(xa_mask.shape, dtype=np.float32)
    dxa[xa_mask] = values[:n_xa]
    dxb = np.zeros(xb_mask.shape, dtype=np.float32)
    dxb[xb_mask] = values[n_xa:]
    if symmetric:  # libriabx2 aligns each pair once (row before column) and mirrors it
        dxa = dxa + dxa.transpose(0, 2, 1)
        xa_mask = xa_mask | xa_mask.transpose(0, 2, 1)
    dev = torch.device(device)
    errors = np.zeros(num)
    triplets = 0
    step = max(1, (1 << 22) // width**3)
    for lo in range(0, num, step):
        sl = slice(lo, lo + step)
        ta = torch.as_tensor(dxa[sl], device=dev)[:, :, :, None]
        tb = torch.as_tensor(dxb[sl], device=dev)[:, :, None, :]
        mask = (
            torch.as_tensor(xa_mask[sl], device=dev)[:, :, :, None]
            & torch.as_tensor(xb_mask[sl], device=dev)[:, :, None, :]
        )
        good = ((ta < tb) & mask).sum(dim=(1, 2, 3)).double() + 0.5 * ((ta == tb) & mask).sum(
            dim=(1, 2, 3)
        ).double()
        total = mask.sum(dim=(1, 2, 3))
        errors[sl] = 1 - (good / total.double()).cpu().numpy()
        triplets += int(total.sum())
    return errors, triplets, len(uniq)


def average(errors: np.ndarray, keys: np.ndarray) -> tuple[float, int]:
    """Mean over (speaker, A, B) cells, then over speakers per (A, B), then over (A, B)."""
    if len(errors) == 0:
        return float("nan"), 0
    cell, cell_idx = np.unique(keys, axis=0, return_inverse=True)
    cell_mean = np.bincount(cell_idx.ravel(), weights=errors) / np.bincount(cell_idx.ravel())
    pair, pair_idx = np.unique(cell[:, 1:], axis=0, return_inverse=True)
    pair_mean = np.bincount(pair_idx.ravel(), weights=cell_mean) / np.bincount(pair_idx.ravel())
    return float(pair_mean.mean()), len(pair)


def score_condition(
    items: ItemSet,
    speaker_mode: str,
    context_mode: str,
    distance: str = "cosine",
    max_size_group: int = MAX_SIZE_GROUP,
    max_x_across: int = MAX_X_ACROSS,
    seed: int = SEED,
    device: str | torch.device = "cpu",
) -> ConditionScore:
    if speaker_mode not in SPEAKER_MODES:
        raise ScpcError(f"unknown ABX speaker mode {speaker_mode!r}; choose within or across")
    if context_mode not in CONTEXT_MODES:
        raise ScpcError(f"unknown ABX context mode {context_mode!r}; choose within or any")
    if distance not in DISTANCES:
        raise ScpcError(f"unknown ABX distance {distance!r}; choose from {', '.join(DISTANCES)}")
    if max_size_group < 2 or max_x_across < 1:
        raise ScpcError("ABX needs max_size_group >= 2 and max_x_across >= 1")
    tasks, symmetric = sample_tasks(
        items,
        speaker_mode=speaker_mode,
        context_mode=context_mode,
        max_size_group=max_size_group,
        max_x_across=max_x_across,
        seed=seed,
    )
    with torch.no_grad():
        errors, triplets, num_dtw = group_errors(items, tasks, symmetric, distance, device)
    error, pairs = average(errors, tasks.keys)
    return ConditionScore(
        speaker_mode,
        context_mode=context_mode,
        error=error,
        num_pairs=pairs,
        num_groups=len(errors),
        num_triplets=triplets,
        num_dtw=num_dtw,
    )


def score_abx(
    feat_dir: str | os.PathLike,
    item_file: str | os.PathLike,
    speaker_modes: Sequence[str] = SPEAKER_MODES,
    context_modes: Sequence[str] = CONTEXT_MODES,
    distance: str = "cosine",
    max_size_group: int = MAX_SIZE_GROUP,
    max_x_across: int = MAX_X_ACROSS,
    seed: int = SEED,
    frame_shift: float = 0.01,
    device: str | torch.device = "cpu",
    file_order: Literal["item", "walk"] = "item",
    item_frames: str = "librilight",
) -> AbxResult:
    """ABX error of every (speaker mode, context mode) of the features in ``feat_dir``."""
    if distance not in DISTANCES:
        raise ScpcError(f"unknown ABX distance {distance!r}; choose from {', '.join(DISTANCES)}")
    if not frame_shift > 0:
        raise ScpcError(f"frame shift must be positive, got {frame_shift}")
    items = load_items(item_file, feat_dir, frame_shift, file_order, item_frames)
    scores = [
        score_condition(
            items,
            speaker_mode=s,
            context_mode=c,
            distance=distance,
            max_size_group=max_size_group,
            max_x_across=max_x_across,
            seed=seed,
            device=device,
        )
        for c in context_modes
        for s in speaker_modes
    ]
    return AbxResult(scores, distance, items.num_lines, len(items), items.num_dropped)


# ---------------------------------------------------------------------------- score files

SCORE_COLUMNS = (
    "speaker_mode",
    "context_mode",
    "distance",
    "abx_error_pct",
    "phone_pairs",
    "groups",
    "triplets",
    "dtw",
)
NUMERIC_COLUMNS = SCORE_COLUMNS[3:]


def score_rows(result: AbxResult) -> list[dict[str, str]]:
    """One row of :data:`SCORE_COLUMNS` per condition, as scpc-abx prints and writes them."""
    return [
        {
            "speaker_mode": s.speaker_mode,
            "context_mode": s.context_mode,
            "distance": result.distance,
            "abx_error_pct": f"{100 * s.error:.4f}",
            "phone_pairs": str(s.num_pairs),
            "groups": str(s.num_groups),
            "triplets": str(s.num_triplets),
            "dtw": str(s.num_dtw),
        }
        for s in result.scores
    ]


def format_scores(rows: list[dict[str, str]]) -> str:
    return aligned(
        SCORE_COLUMNS,
        [[r[c] for c in SCORE_COLUMNS] for r in rows],
        left=len(SCORE_COLUMNS) - len(NUMERIC_COLUMNS),
    )


def write_scores(path: str | os.PathLike, rows: list[dict[str, str]]) -> None:
    """A score CSV (columns missing from ``rows`` left empty), written atomically."""
    with atomic_write(path) as f:
        w = csv.DictWriter(f, fieldnames=SCORE_COLUMNS, restval="", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
