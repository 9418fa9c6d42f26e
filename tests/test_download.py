"""Download scripts against a loopback HTTP server: checksums, resume, corrupt and broken transfers."""

import base64
import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import CORPUS, ROOT, run_script

from scpc.data import datadir as dd

DOWNLOAD = ROOT / "local" / "download_librispeech.sh"


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_first_response_at: int | None = None
        self.protected: str = "/no-such-prefix"  # paths under it need the basic-auth header below
        self.auth = "Basic " + base64.b64encode(b"alice:secret").decode()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        srv: Server = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        if self.path.startswith(srv.protected) and self.headers.get("Authorization") != srv.auth:
            self.send_error(401)
            return
        if self.path not in srv.files:
            self.send_error(404)
            return
        data = srv.files[self.path]
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if start >= len(data):
            self.send_error(416)
            return
        body = data[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if srv.cut_first_response_at is not None:
            body, srv.cut_first_response_at = body[: srv.cut_first_response_at], None
            self.wfile.write(body)
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()


def tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def dev_clean():
    """A LibriSpeech-format dev-clean.tar.gz made of two mini-corpus speakers."""
    members = {"LibriSpeech/SPEAKERS.TXT": (CORPUS / "LibriSpeech" / "SPEAKERS.TXT").read_bytes()}
    for spk in sorted((CORPUS / "LibriSpeech" / "dev").iterdir())[:2]:
        for f in sorted(spk.rglob("*")):
            if f.is_file():
                rel = f.relative_to(CORPUS / "LibriSpeech" / "dev")
                members[f"LibriSpeech/dev-clean/{rel}"] = f.read_bytes()
    return tarball(members)


def serve(server, tmp_path, data, served=None):
    server.files["/resources/12/dev-clean.tar.gz"] = served if served is not None else data
    manifest = tmp_path / "manifest.txt"
    manifest.write_text(
        f"dev-clean.tar.gz {{mirror}}/resources/12/dev-clean.tar.gz md5 {hashlib.md5(data).hexdigest()}\n"
    )
    return manifest


def download(server, manifest, dest, check=True):
    return run_script(
        DOWNLOAD,
        "--mirror",
        server.url,
        "--manifest",
        manifest,
        "--retry-wait",
        "0",
        dest,
        "dev-clean",
        check=check,
    )


def test_download_verifies_extracts_and_prepares(server, tmp_path, dev_clean):
    manifest = serve(server, tmp_path, dev_clean)
    dest = tmp_path / "corpora"
    download(server, manifest, dest)
    part = dest / "LibriSpeech" / "dev-clean"
    assert (dest / ".dev-clean.tar.gz.complete").exists()
    assert not (dest / "dev-clean.tar.gz").exists()  # archives go once extracted
    run_script(ROOT / "local" / "librispeech_data_prep.sh", part, tmp_path / "data" / "dev_clean")
    assert len(dd.DataDir(tmp_path / "data" / "dev_clean").utts()) == 36
    # a second run finds everything in place and asks the server for nothing
    n = len(server.requests)
    assert "present" in download(server, manifest, dest).stdout
    assert len(server.requests) == n


def test_corrupted_download_fails_with_checksum_error_and_leaves_nothing(
    server, tmp_path, dev_clean
):
    corrupt = bytearray(dev_clean)
    corrupt[len(corrupt) // 2] ^= 0xFF
    manifest = serve(server, tmp_path, dev_clean, bytes(corrupt))
    dest = tmp_path / "corpora"
    proc = download(server, manifest, dest, check=False)
    assert proc.returncode == 1
    assert "dev-clean.tar.gz: md5 checksum mismatch" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert sorted(p.name for p in dest.iterdir()) == []


def test_interrupted_transfer_resumes_with_a_range_request(server, tmp_path, dev_clean):
    manifest = serve(server, tmp_path, dev_clean)
    server.cut_first_response_at = len(dev_clean) // 3
    dest = tmp_path / "corpora"
    proc = download(server, manifest, dest)
    assert "retrying" in proc.stderr
    assert server.requests[-1] == (
        "/resources/12/dev-clean.tar.gz",
        f"bytes={len(dev_clean) // 3}-",
    )
    assert (dest / "LibriSpeech" / "dev-clean").is_dir()


def test_killed_download_resumes_from_its_part_file(server, tmp_path, dev_clean):
    manifest = serve(server, tmp_path, dev_clean)
    dest = tmp_path / "corpora"
    dest.mkdir()
    (dest / "dev-clean.tar.gz.part").write_bytes(dev_clean[:1000])
    download(server, manifest, dest)
    assert server.requests == [("/resources/12/dev-clean.tar.gz", "bytes=1000-")]
    assert (dest / "LibriSpeech" / "dev-clean").is_dir()


def test_missing_file_and_unreachable_server_give_clear_errors(server, tmp_path, dev_clean):
    manifest = serve(server, tmp_path, dev_clean)
    del server.files["/resources/12/dev-clean.tar.gz"]
    proc = download(server, manifest, tmp_path / "a", check=False)
    assert proc.returncode == 1 and "HTTP 404" in proc.stderr
    proc = run_script(
        DOWNLOAD,
        "--mirror",
        "http://127.0.0.1:9",
        "--manifest",
        manifest,
        "--retry-wait",
        "0",
        tmp_path / "b",
        "dev-clean",
        check=False,
    )
    assert proc.returncode == 1 and "download failed after 5 retries" in proc.stderr


@pytest.mark.slow
def test_speech_commands_download_and_prep_on_mini_archives(server, tmp_path, mini_data):
    """The real archives have no top-level folder; the script extracts each into its own."""
    local = mini_data / "local"
    archives = {}
    for name in ("speech_commands_v0.01", "speech_commands_test_set_v0.01"):
        root = local / name
        archives[name] = tarball(
            {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        )
        server.files[f"/{name}.tar.gz"] = archives[name]
    manifest = tmp_path / "sc.txt"
    manifest.write_text(
        "speech_commands_v0.01.tar.gz {mirror}/speech_commands_v0.01.tar.gz md5 "
        f"{hashlib.md5(archives['speech_commands_v0.01']).hexdigest()} speech_commands_v0.01\n"
        "speech_commands_test_set_v0.01.tar.gz {mirror}/speech_commands_test_set_v0.01.tar.gz - - "
        "speech_commands_test_set_v0.01\n"
    )
    dest = tmp_path / "sc"
    proc = run_script(
        ROOT / "local" / "download_speech_commands.sh",
        "--mirror",
        server.url,
        "--manifest",
        manifest,
        dest,
    )
    assert "no published checksum" in proc.stderr
    run_script(
        ROOT / "local" / "speech_commands_data_prep.sh",
        "--test-dir",
        dest / "speech_commands_test_set_v0.01",
        dest / "speech_commands_v0.01",
        tmp_path / "data",
    )
    for part in ("train", "valid", "test"):
        assert (tmp_path / "data" / part / "utt2label").read_text() == (
            mini_data.parent / "mini_speech_commands" / part / "utt2label"
        ).read_text()


@pytest.mark.slow
def test_voxceleb1_download_joins_the_dev_parts_and_prepares(server, tmp_path, mini_data):
    """VoxCeleb1's dev zip comes in four pieces behind credentials; metadata is public."""
    vox = mini_data / "local" / "voxceleb1"
    test_speakers = {
        line.split()[1].split("/")[0] for line in (vox / "veri_test.txt").read_text().splitlines()
    }
    zips = {}
    for name, keep in (
        ("dev", lambda s: s not in test_speakers),
        ("test", lambda s: s in test_speakers),
    ):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for wav in sorted((vox / "wav").rglob("*.wav")):
                if keep(wav.parent.parent.name):
                    z.write(wav, str(wav.relative_to(vox)))
        zips[name] = buf.getvalue()
    quarter = -(-len(zips["dev"]) // 4)
    lines = []
    for i, suffix in enumerate("abcd"):
        piece = zips["dev"][i * quarter : (i + 1) * quarter]
        server.files[f"/vox1a/vox1_dev_wav_parta{suffix}"] = piece
        lines.append(
            f"vox1_dev_wav_parta{suffix} {{mirror}}/vox1a/vox1_dev_wav_parta{suffix} sha256 {hashlib.sha256(piece).hexdigest()}"
        )
    server.files["/vox1a/vox1_test_wav.zip"] = zips["test"]
    lines.append(
        f"vox1_test_wav.zip {{mirror}}/vox1a/vox1_test_wav.zip sha256 {hashlib.sha256(zips['test']).hexdigest()}"
    )
    for meta in ("iden_split.txt", "veri_test.txt", "vox1_meta.csv"):
        server.files[f"/meta/{meta}"] = (vox / meta).read_bytes()
        lines.append(f"{meta} {{mirror}}/meta/{meta} - -")
    server.files["/meta/veri_test2.txt"] = (vox / "veri_test.txt").read_bytes()
    lines.append("veri_test2.txt {mirror}/meta/veri_test2.txt - -")
    (tmp_path / "vox.txt").write_text("\n".join(lines) + "\n")
    server.protected = "/vox1a/"
    script = ROOT / "local" / "download_voxceleb1.sh"
    args = ("--mirror", server.url, "--manifest", tmp_path / "vox.txt", "--retry-wait", "0")
    proc = run_script(script, *args, tmp_path / "vox", check=False)
    assert proc.returncode == 1 and "needs credentials" in proc.stderr
    proc = run_script(
        script, *args, "--user", "mallory", "--password", "x", tmp_path / "vox", check=False
    )
    assert proc.returncode == 1 and "HTTP 401" in proc.stderr and "check credentials" in proc.stderr
    run_script(script, *args, "--user", "alice", "--password", "secret", tmp_path / "vox")
    assert not list((tmp_path / "vox").glob("vox1_dev_wav_part*"))
    run_script(ROOT / "local" / "voxceleb1_data_prep.sh", tmp_path / "vox", tmp_path / "data")
    for name in ("sid_train", "sid_test", "asv_train", "asv_test"):
        ours = dd.read_table(tmp_path / "data" / name / "utt2dur")
        assert ours == dd.read_table(mini_data.parent / "mini_voxceleb1" / name / "utt2dur")
