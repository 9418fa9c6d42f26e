"""Sharded corpora: steps/make_shards.sh packs a data dir into WebDataset-convention tar
shards that the webdataset package reads; ShardStream gives every utterance once per epoch
over disjoint readers, equals the data dir's features, skips to a recorded position exactly,
reads shards through commands, and names a corrupt shard in one line; local shards read by
index (shards.idx) give the data dir's items bitwise."""

import json

import pytest
import torch
from conftest import ROOT, run_script

from scpc.data import shards as shards_module
from scpc.data.audiodir_dataset import AudioDirDataset
from scpc.data.datadir import copy_filtered, read_table
from scpc.data.loader import open_dataset
from scpc.data.shard_index_dataset import ShardIndexDataset
from scpc.data.shards import ShardStream, read_shard_list, write_shards
from scpc.errors import ScpcError
from scpc.frontend import load_frontend_config

FBANK = load_frontend_config(ROOT / "conf" / "feats" / "fbank-80.json")


@pytest.fixture(scope="module")
def shards(mini_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "dev"
    proc = run_script(
        ROOT / "steps" / "make_shards.sh", "--shard-seconds", "30", mini_data / "dev", out
    )
    assert "shards" in proc.stdout
    return out


def test_shards_hold_every_utterance_and_read_with_webdataset(shards, mini_data):
    import webdataset as wds

    index = json.loads((shards / "shards.json").read_text())
    assert index["utterances"] == 72 and len(index["shards"]) >= 8
    assert all(s["seconds"] <= 30 + 20 for s in index["shards"])
    samples = list(wds.WebDataset(read_shard_list(shards), shardshuffle=False))
    assert len(samples) == 72
    wav = read_table(mini_data / "dev" / "wav.scp")
    first = samples[0]
    meta = json.loads(first["json"])
    assert first["flac"] == open(wav[meta["id"]], "rb").read()  # the original bytes
    assert meta["speaker"] == read_table(mini_data / "dev" / "utt2spk")[meta["id"]]
    assert "ali" in meta and "text" in meta


def test_readers_are_disjoint_and_cover_every_utterance(shards):
    lists = read_shard_list(shards)
    for epoch in (0, 1):
        seen = []
        for rank in range(2):
            stream = ShardStream(lists, {"name": "raw"}, seed=3, rank=rank, world_size=2, buffer=8)
            stream.set_epoch(epoch)
            seen.append([m[2] for _, _, m in stream])
        assert not set(seen[0]) & set(seen[1])
        assert len(seen[0]) + len(seen[1]) == 72
    # workers split a process's shards further, through a DataLoader
    stream = ShardStream(lists, {"name": "raw"}, seed=3, buffer=8)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    ids = [m[2] for _, _, m in loader]
    assert len(ids) == 72 and sorted(ids) == sorted(set(ids))


def test_stream_equals_the_data_dirs_features_and_resumes_exactly(shards, mini_data):
    live = AudioDirDataset(mini_data / "dev", FBANK, with_ali=True)
    by_id = {u: i for i, u in enumerate(live.uttids)}
    stream = ShardStream(read_shard_list(shards), FBANK, seed=1, buffer=16, with_ali=True)
    stream.set_epoch(2)
    full = list(stream)
    for feats, ali, (_, _, utt) in full[:10]:
        f, a, _ = live[by_id[utt]]
        assert torch.equal(feats, f) and torch.equal(ali, a)
    stream.set_epoch(2, skip={0: 25})
    rest = list(stream)
    assert [m for _, _, m in rest] == [m for _, _, m in full[25:]]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(rest, full[25:]))


def test_index_access_equals_the_data_dir_bitwise(shards, mini_data, tmp_path):
    live = AudioDirDataset(mini_data / "dev", FBANK, with_ali=True)
    indexed = open_dataset(shards, FBANK, with_ali=True)
    assert isinstance(indexed, ShardIndexDataset) and len(read_shard_list(shards)) > 1
    assert indexed.uttids == live.uttids and indexed.lengths == live.lengths
    assert indexed.utt2spk == live.utt2spk and indexed.num_samples == live.num_samples
    for i in range(0, len(live), 5):
        (a, ali_a, j), (b, ali_b, k) = live[i], indexed[i]
        assert j == k == i and torch.equal(a, b) and torch.equal(ali_a, ali_b)
    # shards behind commands have no random access
    piped = tmp_path / "piped.list"
    piped.write_text("".join(f"cat {s} |\n" for s in read_shard_list(shards)))
    with pytest.raises(ScpcError, match="streamed"):
        ShardIndexDataset(piped, FBANK)


def test_shards_stream_through_a_command_and_resume_packing(
    shards, tmp_path, mini_data, monkeypatch
):
    lists = [f"cat {s} |" for s in read_shard_list(shards)]
    stream = ShardStream(lists, {"name": "raw"}, buffer=4)
    assert len(list(stream)) == 72
    # an interrupted packing run keeps the shards it finished
    data = tmp_path / "d"
    copy_filtered(mini_data / "dev", data, list(read_table(mini_data / "dev" / "utt2spk"))[:12])
    out = tmp_path / "s"
    real, calls = shards_module._flac_bytes, []

    def dying(*args):
        calls.append(args)
        if len(calls) == 8:
            raise KeyboardInterrupt  # killed while packing the second shard
        return real(*args)

    monkeypatch.setattr(shards_module, "_flac_bytes", dying)
    with pytest.raises(KeyboardInterrupt):
        write_shards(data, out, shard_seconds=20)
    monkeypatch.undo()
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.tar")}
    assert kept and not list(out.glob(".*")) and not (out / "shards.list").exists()
    index = write_shards(data, out, shard_seconds=20)
    assert all((out / name).stat().st_mtime_ns == t for name, t in kept.items())
    assert len(index["shards"]) > len(kept) and index["utterances"] == 12
    assert len(list(ShardStream(read_shard_list(out), {"name": "raw"}))) == 12


@pytest.mark.slow
def test_corrupt_shard_or_missing_audio_is_one_line(shards, tmp_path, mini_data):
    lists = read_shard_list(shards)
    bad = tmp_path / "bad.tar"
    data = open(lists[0], "rb").read()
    bad.write_bytes(data[: len(data) // 2] + b"\x00garbage" * 100)
    stream = ShardStream([str(bad)], {"name": "raw"}, buffer=1)
    with pytest.raises(ScpcError, match=f"{bad}: "):
        list(stream)
    with pytest.raises(ScpcError, match="no such shard"):
        list(ShardStream([str(tmp_path / "gone.tar")], {"name": "raw"}))
    d = tmp_path / "d"
    copy_filtered(mini_data / "dev", d, list(read_table(mini_data / "dev" / "utt2spk"))[:2])
    (d / "utt2num_samples").write_text("")
    wav = read_table(d / "wav.scp")
    u = next(iter(wav))
    (d / "wav.scp").write_text(
        "".join(f"{k} {tmp_path / 'x.flac' if k == u else v}\n" for k, v in wav.items())
    )
    (d / "utt2num_samples").unlink()
    proc = run_script(ROOT / "steps" / "make_shards.sh", d, tmp_path / "out", check=False)
    assert proc.returncode == 1 and f"{tmp_path / 'x.flac'}: no such audio file" in proc.stderr
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize("budget", [None, 1500.0])
def test_reader_batches_resume_in_the_data_loaders_order(shards, budget):
    """ShardBatches through a 2-worker DataLoader: stopping after any step and restarting with
    the consumed batch count per reader and the reader due next gives the rest exactly."""
    from scpc.data.shards import ShardBatches

    def run(skip=None, first=0):
        stream = ShardBatches(read_shard_list(shards), {"name": "raw"}, batch_size=3,
                              budget_frames=budget, pool=20, seed=2, buffer=8)  # fmt: skip
        stream.set_epoch(1, skip, first)
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
        return [(r, o, [m[0] for _, _, m in items]) for r, o, items in loader]

    full = run()
    assert sorted(u for _, _, b in full for u in b) == sorted({u for _, _, b in full for u in b})
    assert len({u for _, _, b in full for u in b}) == 72
    for stop in (1, 4, len(full) - 2):
        done = full[:stop]
        skip = {r: max(o for rr, o, _ in done if rr == r) + 1 for r in {r for r, _, _ in done}}
        rest = run(skip, first=(done[-1][0] + 1) % 2)
        assert rest == full[stop:], stop
