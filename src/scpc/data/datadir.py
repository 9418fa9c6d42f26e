"""Kaldi data directories: reading, validating, fixing, subsetting, splitting, combining.

A data dir holds sorted tables keyed by utterance (``utt2spk``, ``text``, ``wav.scp`` or
``segments``, ``utt2dur``, ...) or by speaker (``spk2utt``, ``spk2gender``). Keys sort
bytewise (``LC_ALL=C``), and utterance ids begin with their speaker id so that both sort
orders agree. Beside Kaldi's files this toolkit keeps frame alignments (``ali.txt`` with
``phones.txt``), ABX item files (``abx.item``), class labels (``utt2label``) and
verification trials (``trials``); every operation here carries them along.
"""

from __future__ import annotations

import os
import shutil
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from scpc import audio
from scpc.errors import ScpcError, crlf_error
from scpc.io import atomic_write

# Tables keyed by utterance that every utterance must appear in, when the table exists.
UTT_TABLES = (
    "utt2spk",
    "text",
    "utt2dur",
    "utt2num_frames",
    "utt2num_samples",
    "feats.scp",
    "utt2label",
    "utt2lang",
)
# Tables keyed by utterance that may cover only some utterances.
PARTIAL_UTT_TABLES = ("ali.txt",)
SPK_TABLES = ("spk2gender",)
COPIED_FILES = ("phones.txt",)
GENDERS = ("m", "f")


def check_key(path: Path, lineno: int, key: str) -> None:
    if not key.isprintable() or "/" in key:
        raise ScpcError(f"{path}:{lineno}: invalid key {key!r}")


def read_table(path: str | os.PathLike, check_sorted: bool = True) -> OrderedDict[str, str]:
    """Read a Kaldi table: ``key rest-of-line``; keys must be unique (and sorted)."""
    path = Path(path)
    table: OrderedDict[str, str] = OrderedDict()
    try:
        with open(path, encoding="utf-8", newline="") as f:  # newline="": see a \r
            lines = f.read().split("\n")
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such file") from None
    except UnicodeDecodeError as e:
        raise ScpcError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    if lines and lines[-1] == "":
        lines.pop()
    prev = None
    for lineno, line in enumerate(lines, 1):
        if line.endswith("\r"):
            raise crlf_error(path, lineno)
        fields = line.split(maxsplit=1)
        if not fields:
            raise ScpcError(f"{path}:{lineno}: empty line")
        key = fields[0]
        check_key(path, lineno, key)
        if key in table:
            raise ScpcError(f"{path}:{lineno}: duplicate key {key!r}; run utils/fix_data_dir.sh")
        if check_sorted and prev is not None and key < prev:
            raise ScpcError(
                f"{path}:{lineno}: not sorted ({key!r} after {prev!r}); run utils/fix_data_dir.sh"
            )
        table[key] = fields[1].strip() if len(fields) > 1 else ""
        prev = key
    return table


def write_table(path: str | os.PathLike, table: dict[str, str] | Iterable[tuple[str, str]]) -> None:
    """Write a table sorted by key (bytewise), atomically."""
    items = sorted(table.items() if isinstance(table, dict) else table)
    with atomic_write(path) as f:
        for key, value in items:
            f.write(f"{key} {value}\n" if value != "" else f"{key}\n")


def utt2spk_to_spk2utt(utt2spk: dict[str, str]) -> OrderedDict[str, str]:
    spk2utt: dict[str, list[str]] = {}
    for utt, spk in utt2spk.items():
        spk2utt.setdefault(spk, []).append(utt)
    return OrderedDict((s, " ".join(sorted(u))) for s, u in sorted(spk2utt.items()))


def spk2utt_to_utt2spk(spk2utt: dict[str, str]) -> OrderedDict[str, str]:
    return OrderedDict(sorted((u, s) for s, utts in spk2utt.items() for u in utts.split()))


@dataclass
class DataDir:
    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def file(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        return self.file(name).is_file()

    def table(self, name: str, check_sorted: bool = True) -> OrderedDict[str, str]:
        return read_table(self.file(name), check_sorted)

    def utts(self) -> list[str]:
        return list(self.table("utt2spk"))

    def durations(self) -> dict[str, float]:
        """Utterance durations from utt2dur or utt2num_samples, else from segments or the
        audio headers."""
        if self.has("utt2dur"):
            return {u: float(d) for u, d in self.table("utt2dur").items()}
        if self.has("utt2num_samples"):
            return {u: int(n) / audio.SAMPLE_RATE for u, n in self.table("utt2num_samples").items()}
        return compute_durations(self)


def _keys_mismatch(path: Path, keys: Iterable[str], expected: Sequence[str], what: str) -> None:
    keys = list(keys)
    missing = sorted(set(expected) - set(keys))
    extra = sorted(set(keys) - set(expected))
    if missing:
        raise ScpcError(
            f"{path}: {len(missing)} {what} missing (first: {missing[0]}); "
            "run utils/fix_data_dir.sh"
        )
    if extra:
        raise ScpcError(
            f"{path}: {len(extra)} keys not in utt2spk (first: {extra[0]}); run utils/fix_data_dir.sh"
        )


def _float(path: Path, key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ScpcError(f"{path}: {key}: {value!r} is not a number") from None


def validate(
    path: str | os.PathLike,
    text: bool = True,
    wav: bool = True,
    feats: bool = True,
    spk_sort: bool = True,
    check_audio: bool = True,
) -> str:
    """Check a data dir; raise ScpcError naming the first problem; return a one-line summary."""
    d = DataDir(path)
    if not d.path.is_dir():
        raise ScpcError(f"{d.path}: no such data directory")
    utt2spk = d.table("utt2spk")
    if not utt2spk:
        raise ScpcError(f"{d.file('utt2spk')}: empty")
    for utt, spk in utt2spk.items():
        if len(spk.split()) != 1:
            raise ScpcError(f"{d.file('utt2spk')}: {utt}: expected exactly one speaker id")
    utts = list(utt2spk)
    if spk_sort:
        by_speaker = sorted(utts, key=lambda u: (utt2spk[u], u))
        if by_speaker != utts:
            first = next(u for u, v in zip(utts, by_speaker) if u != v)
            raise ScpcError(
                f"{d.file('utt2spk')}: not sorted by speaker as well as by utterance (at {first}); "
                "utterance ids should begin with the speaker id"
            )
    if not d.has("spk2utt"):
        raise ScpcError(f"{d.file('spk2utt')}: no such file; run utils/fix_data_dir.sh")
    if d.table("spk2utt") != utt2spk_to_spk2utt(utt2spk):
        raise ScpcError(f"{d.file('spk2utt')}: does not match utt2spk; run utils/fix_data_dir.sh")
    speakers = list(utt2spk_to_spk2utt(utt2spk))

    if text:
        if not d.has("text"):
            raise ScpcError(f"{d.file('text')}: no such file (use --no-text if intended)")
    durations: dict[str, float] = {}
    for name in UTT_TABLES[1:]:
        if not d.has(name) or (name == "text" and not text) or (name == "feats.scp" and not feats):
            continue
        table = d.table(name)
        _keys_mismatch(d.file(name), table, utts, "utterances")
        if name == "utt2dur":
            for utt, value in table.items():
                dur = durations[utt] = _float(d.file(name), utt, value)
                if dur <= 0:
                    raise ScpcError(f"{d.file(name)}: {utt}: duration {dur} is not positive")
    if wav:
        _validate_audio(d, utts, check_audio, durations)
    if d.has("spk2gender"):
        spk2gender = d.table("spk2gender")
        _keys_mismatch(d.file("spk2gender"), spk2gender, speakers, "speakers")
        for spk, g in spk2gender.items():
            if g not in GENDERS:
                raise ScpcError(f"{d.file('spk2gender')}: {spk}: gender {g!r} is not m or f")
    if d.has("ali.txt"):
        _validate_alignments(d, set(utts), durations)
    if d.has("abx.item"):
        _validate_items(d, set(utts), durations)
    if d.has("trials"):
        _validate_trials(d, set(utts))
    minutes = sum(durations.values()) / 60
    extra = f", {minutes:.1f} min" if durations else ""
    return f"{d.path}: {len(utts)} utterances, {len(speakers)} speakers{extra}"


def _validate_audio(d: DataDir, utts: list[str], check_audio: bool, durations: dict) -> None:
    if not d.has("wav.scp"):
        raise ScpcError(f"{d.file('wav.scp')}: no such file (use --no-wav if intended)")
    wav = d.table("wav.scp")
    if d.has("segments"):
        segments = d.table("segments")
        _keys_mismatch(d.file("segments"), segments, utts, "utterances")
        for utt, value in segments.items():
            fields = value.split()
            if len(fields) != 3:
                raise ScpcError(f"{d.file('segments')}: {utt}: expected 'utt reco start end'")
            reco = fields[0]
            start, end = (_float(d.file("segments"), utt, v) for v in fields[1:])
            if reco not in wav:
                raise ScpcError(f"{d.file('segments')}: {utt}: recording {reco} not in wav.scp")
            if start < 0 or (end != -1 and end <= start):
                raise ScpcError(f"{d.file('segments')}: {utt}: bad times {start} {end}")
    else:
        _keys_mismatch(d.file("wav.scp"), wav, utts, "utterances")
    for key, entry in wav.items():
        if not entry:
            raise ScpcError(f"{d.file('wav.scp')}: {key}: no audio given")
        if check_audio and not audio.is_pipe(entry) and not os.path.isfile(entry):
            raise ScpcError(f"{d.file('wav.scp')}: {key}: audio file {entry} does not exist")


def _validate_alignments(d: DataDir, utts: set[str], durations: dict[str, float]) -> None:
    if not d.has("phones.txt"):
        raise ScpcError(f"{d.file('phones.txt')}: no such file (needed by ali.txt)")
    num_phones = len(d.table("phones.txt", check_sorted=False))
    for utt, labels in d.table("ali.txt").items():
        if utt not in utts:
            raise ScpcError(f"{d.file('ali.txt')}: {utt} not in utt2spk; run utils/fix_data_dir.sh")
        ids = labels.split()
        if not all(x.isdigit() and int(x) < num_phones for x in ids):
            raise ScpcError(
                f"{d.file('ali.txt')}: {utt}: labels must be phone ids below {num_phones}"
            )
        # frames lie wholly inside the audio: |frames * 10 ms - duration| <= 25 ms (400 samples)
        if utt in durations and abs(len(ids) * 0.01 - durations[utt]) > 0.025:
            raise ScpcError(
                f"{d.file('ali.txt')}: {utt}: {len(ids)} frames do not fit its "
                f"{durations[utt]:.3f} s of audio"
            )


def _validate_items(d: DataDir, utts: set[str], durations: dict[str, float]) -> None:
    from scpc.data.alignment import read_items

    for lineno, item in enumerate(read_items(d.file("abx.item")), 2):
        if item.file not in utts:
            raise ScpcError(f"{d.file('abx.item')}:{lineno}: {item.file} not in utt2spk")
        if item.file in durations and item.offset > durations[item.file] + 0.01:
            raise ScpcError(
                f"{d.file('abx.item')}:{lineno}: offset {item.offset} past the end of {item.file}"
            )


def _validate_trials(d: DataDir, utts: set[str]) -> None:
    with open(d.file("trials"), encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if len(fields) != 3 or fields[2] not in ("target", "nontarget"):
                raise ScpcError(
                    f"{d.file('trials')}:{lineno}: expected 'enroll test target|nontarget'"
                )
            for utt in fields[:2]:
                if utt not in utts:
                    raise ScpcError(f"{d.file('trials')}:{lineno}: {utt} not in utt2spk")


def compute_durations(d: DataDir) -> dict[str, float]:
    """Durations from segments, or from each recording in wav.scp."""
    if d.has("segments"):
        reco_dur: dict[str, float] = {}
        wav = d.table("wav.scp")
        out = {}
        for utt, value in d.table("segments").items():
            reco, start, end = value.split()
            if float(end) < 0:
                if reco not in reco_dur:
                    reco_dur[reco] = audio.duration(wav[reco])
                out[utt] = reco_dur[reco] - float(start)
            else:
                out[utt] = float(end) - float(start)
        return out
    return {utt: audio.duration(entry) for utt, entry in d.table("wav.scp").items()}


def write_utt2dur(path: str | os.PathLike) -> int:
    d = DataDir(path)
    durations = compute_durations(d)
    write_table(d.file("utt2dur"), {u: f"{v:.4f}" for u, v in durations.items()})
    return len(durations)


def filter_lines(src: Path, dest: Path, keep: Callable[[list[str]], bool], header: bool) -> None:
    """Copy the lines of src whose fields satisfy keep (and a leading # header) to dest."""
    with open(src, encoding="utf-8") as f:
        lines = f.readlines()
    with atomic_write(dest) as out:
        for i, line in enumerate(lines):
            fields = line.split()
            if (header and i == 0 and fields and fields[0].startswith("#")) or (
                fields and keep(fields)
            ):
                out.write(line)


def copy_filtered(src: str | os.PathLike, dest: str | os.PathLike, utts: Iterable[str]) -> None:
    """Write to ``dest`` every table of ``src`` restricted to ``utts``, sorted, with spk2utt."""
    s, t = DataDir(src), DataDir(dest)
    keep = set(utts)
    t.path.mkdir(parents=True, exist_ok=True)
    utt2spk = OrderedDict(
        (u, v) for u, v in s.table("utt2spk", check_sorted=False).items() if u in keep
    )
    if not utt2spk:
        raise ScpcError(f"{t.path}: no utterances left to write")
    for name in UTT_TABLES + PARTIAL_UTT_TABLES:
        if s.has(name):
            write_table(
                t.file(name),
                {u: v for u, v in s.table(name, check_sorted=False).items() if u in keep},
            )
    speakers = set(utt2spk.values())
    write_table(t.file("spk2utt"), utt2spk_to_spk2utt(utt2spk))
    for name in SPK_TABLES:
        if s.has(name):
            write_table(
                t.file(name),
                {k: v for k, v in s.table(name, check_sorted=False).items() if k in speakers},
            )
    wav = s.table("wav.scp", check_sorted=False) if s.has("wav.scp") else None
    if s.has("segments"):
        segments = {u: v for u, v in s.table("segments", check_sorted=False).items() if u in keep}
        write_table(t.file("segments"), segments)
        recos = {v.split()[0] for v in segments.values()}
        if wav is not None:
            write_table(t.file("wav.scp"), {r: e for r, e in wav.items() if r in recos})
    elif wav is not None:
        write_table(t.file("wav.scp"), {u: e for u, e in wav.items() if u in keep})
    for name in COPIED_FILES:
        if s.has(name) and s.path.resolve() != t.path.resolve():
            shutil.copyfile(s.file(name), t.file(name))
    if s.has("abx.item"):
        filter_lines(s.file("abx.item"), t.file("abx.item"), lambda f: f[0] in keep, header=True)
    if s.has("trials"):
        filter_lines(
            s.file("trials"), t.file("trials"), lambda f: f[0] in keep and f[1] in keep, False
        )


def fix(path: str | os.PathLike) -> tuple[int, int]:
    """Kaldi's fix_data_dir.sh: sort every table and keep the utterances present in all of them.

    The originals go to ``.backup/``. Returns (kept, before).
    """
    d = DataDir(path)
    if not d.has("utt2spk"):
        raise ScpcError(f"{d.file('utt2spk')}: no such file")
    backup = d.path / ".backup"
    backup.mkdir(exist_ok=True)
    for f in d.path.iterdir():
        if f.is_file():
            shutil.copy2(f, backup / f.name)
    utt2spk = _read_unsorted(d.file("utt2spk"))
    before = len(utt2spk)
    keep = set(utt2spk)
    for name in UTT_TABLES[1:] + ("segments",):
        if d.has(name):
            keep &= set(_read_unsorted(d.file(name)))
    if d.has("wav.scp"):
        wav = _read_unsorted(d.file("wav.scp"))
        if d.has("segments"):
            segs = _read_unsorted(d.file("segments"))
            keep = {u for u in keep if segs[u].split()[0] in wav}
        else:
            keep &= set(wav)
    # rewrite the inputs deduplicated (first entry wins) so that copy_filtered can read them
    for name in UTT_TABLES + PARTIAL_UTT_TABLES + SPK_TABLES + ("segments", "wav.scp"):
        if d.has(name):
            write_table(d.file(name), _read_unsorted(d.file(name)))
    copy_filtered(d.path, d.path, keep)
    return len(keep), before


def _read_unsorted(path: Path) -> OrderedDict[str, str]:
    table: OrderedDict[str, str] = OrderedDict()
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split(maxsplit=1)
            if fields and fields[0] not in table:
                table[fields[0]] = fields[1].strip() if len(fields) > 1 else ""
    return table


def select_utterances(
    src: str | os.PathLike,
    mode: str,
    num: int | None = None,
    list_file: str | os.PathLike | None = None,
) -> list[str]:
    """Utterances for subset_data_dir.sh's modes.

    ``utt-list``/``spk-list`` read ids from the first column of ``list_file``; ``even``,
    ``first``,
    ``last``, ``shortest`` take ``num`` utterances; ``per-spk`` the first ``num`` of each
    speaker; ``speakers`` whole speakers, spread over the speaker list, until about ``num``.
    """
    d = DataDir(src)
    utt2spk = d.table("utt2spk")
    utts = list(utt2spk)
    if mode in ("utt-list", "spk-list"):
        assert list_file is not None
        try:
            wanted = {line.split()[0] for line in open(list_file, encoding="utf-8") if line.strip()}
        except FileNotFoundError:
            raise ScpcError(f"{list_file}: no such file") from None
        field = utt2spk if mode == "spk-list" else {u: u for u in utts}
        chosen = [u for u in utts if field[u] in wanted]
        if not chosen:
            raise ScpcError(f"{list_file}: none of its ids are in {d.path}")
        return chosen
    assert num is not None
    if num <= 0:
        raise ScpcError(f"the number of utterances must be positive, got {num}")
    if mode == "even":  # Kaldi's default: num utterances spread evenly through the list
        step = len(utts) / min(num, len(utts))
        return [utts[int(i * step)] for i in range(min(num, len(utts)))]
    if mode == "first":
        return utts[:num]
    if mode == "last":
        return utts[-num:]
    if mode == "shortest":
        dur = d.durations()
        return sorted(sorted(utts, key=lambda u: (dur[u], u))[:num])
    spk2utt = utt2spk_to_spk2utt(utt2spk)
    if mode == "per-spk":
        return sorted(u for us in spk2utt.values() for u in us.split()[:num])
    if mode == "speakers":
        speakers = list(spk2utt)
        if num >= len(utts):
            return utts
        # take every k-th speaker so the subset spans the list, as Kaldi's --speakers does
        share = num / len(utts)
        chosen, total = [], 0.0
        for spk in speakers:
            total += share * len(spk2utt[spk].split())
            if total >= 1 - 1e-9:
                chosen.append(spk)
                total -= len(spk2utt[spk].split())
        return sorted(u for s in chosen for u in spk2utt[s].split())
    raise ScpcError(f"unknown subset mode {mode!r}")


def split(path: str | os.PathLike, num: int, per_utt: bool = False) -> list[Path]:
    """Kaldi's split_data.sh: ``<dir>/split<N>[utt]/{1..N}``, by speaker unless per_utt.

    Parts are contiguous in sort order and balanced by utterance count. Reuses an existing
    split that is newer than every table of the data dir.
    """
    d = DataDir(path)
    utt2spk = d.table("utt2spk")
    root = d.path / f"split{num}{'utt' if per_utt else ''}"
    parts = [root / str(i) for i in range(1, num + 1)]
    marker = root / ".complete"
    newest = max(f.stat().st_mtime for f in d.path.iterdir() if f.is_file())
    if marker.exists() and marker.stat().st_mtime >= newest and all(p.is_dir() for p in parts):
        return parts
    if num < 1:
        raise ScpcError(f"cannot split into {num} parts")
    if per_utt:
        units = [[u] for u in utt2spk]
    else:
        units = [us.split() for us in utt2spk_to_spk2utt(utt2spk).values()]
    if len(units) < num:
        what, hint = ("utterances", "") if per_utt else ("speakers", " (use --per-utt)")
        raise ScpcError(f"{d.path}: cannot split {len(units)} {what} into {num} parts{hint}")
    groups = _balanced_contiguous(units, num)
    if root.exists():
        shutil.rmtree(root)
    for part, group in zip(parts, groups):
        copy_filtered(d.path, part, [u for unit in group for u in unit])
    marker.touch()
    return parts


def _balanced_contiguous(units: list[list[str]], num: int) -> list[list[list[str]]]:
    """Cut a sequence of units into num non-empty runs with about equal utterance counts."""
    total = sum(len(u) for u in units)
    groups: list[list[list[str]]] = [[] for _ in range(num)]
    done, g = 0, 0
    for i, unit in enumerate(units):
        left_units, left_groups = len(units) - i, num - g
        target = total * (g + 1) / num
        # move on when this group reached its share, keeping one unit for every later group
        if groups[g] and (done + len(unit) / 2 > target or left_units < left_groups):
            g += 1
        groups[g].append(unit)
        done += len(unit)
    return groups


def combine(dest: str | os.PathLike, sources: Sequence[str | os.PathLike]) -> int:
    """Kaldi's combine_data.sh: the union of data dirs (utterance ids must not collide)."""
    t = DataDir(dest)
    if not sources:
        raise ScpcError("combine_data.sh needs at least one source data dir")
    names = set(UTT_TABLES + PARTIAL_UTT_TABLES + SPK_TABLES + ("segments", "wav.scp"))
    tables: dict[str, dict[str, str]] = {}
    present: dict[str, int] = {}
    for src in sources:
        s = DataDir(src)
        if not s.has("utt2spk"):
            raise ScpcError(f"{s.file('utt2spk')}: no such file")
        for name in names:
            if not s.has(name):
                continue
            present[name] = present.get(name, 0) + 1
            table = tables.setdefault(name, {})
            for k, v in s.table(name).items():
                if k in table and (name not in SPK_TABLES or table[k] != v):
                    raise ScpcError(f"{s.file(name)}: key {k} also appears in an earlier source")
                table[k] = v
    t.path.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        if name in UTT_TABLES and present[name] < len(sources):
            continue  # Kaldi drops a per-utterance table that some sources lack
        write_table(t.file(name), table)
    write_table(t.file("spk2utt"), utt2spk_to_spk2utt(tables["utt2spk"]))
    for name in COPIED_FILES:
        src_files = [DataDir(s).file(name) for s in sources if DataDir(s).has(name)]
        if src_files:
            contents = {f.read_text() for f in src_files}
            if len(contents) > 1:
                raise ScpcError(f"{name}: differs between the sources; cannot combine")
            shutil.copyfile(src_files[0], t.file(name))
    return len(tables["utt2spk"])


def audio_entries(d: DataDir) -> Iterator[tuple[str, str, float, float | None]]:
    """(utt, wav.scp entry, start, end) for every utterance, through segments if present."""
    wav = d.table("wav.scp")
    if not d.has("segments"):
        for utt, entry in wav.items():
            yield utt, entry, 0.0, None
        return
    for utt, value in d.table("segments").items():
        fields = value.split()
        if len(fields) != 3 or fields[0] not in wav:
            raise ScpcError(f"{d.file('segments')}: {utt}: expected '<recording> <start> <end>'")
        try:
            start, end = float(fields[1]), float(fields[2])
        except ValueError:
            raise ScpcError(f"{d.file('segments')}: {utt}: bad start/end {value!r}") from None
        yield utt, wav[fields[0]], start, end
