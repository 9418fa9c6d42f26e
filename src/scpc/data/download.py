"""Resumable, checksummed downloads and atomic extraction of corpus archives.

A resource manifest lists ``name url algorithm digest [into]`` per line; ``{mirror}`` in a
URL is replaced by the chosen mirror; ``-`` as digest means none is published, and then the
archive's own integrity (gzip/zip CRCs, checked while extracting) is what is verified.
Partial downloads live in ``<name>.part`` and resume with an HTTP Range request.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from scpc.errors import ScpcError
from scpc.progress import progress_bar

CHUNK = 1 << 20


@dataclass(frozen=True)
class Resource:
    name: str
    url: str
    algorithm: str  # md5, sha256, or "-" when no checksum is published
    digest: str
    into: str = "."  # subdirectory of the destination to extract into


def read_manifest(path: str | os.PathLike) -> dict[str, Resource]:
    resources = {}
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        raise ScpcError(f"{path}: no such resource manifest") from None
    for lineno, line in enumerate(lines, 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) not in (4, 5) or fields[2] not in ("md5", "sha256", "-"):
            raise ScpcError(f"{path}:{lineno}: expected 'name url md5|sha256|- digest [into]'")
        resources[fields[0]] = Resource(*fields)
    return resources


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _progress(total: int | None, initial: int, desc: str) -> tqdm:
    return progress_bar(
        total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024
    )


def fetch(
    url: str,
    dest: Path,
    algorithm: str = "-",
    digest: str = "-",
    auth: tuple[str, str] | None = None,
    retries: int = 5,
    retry_wait: float = 5.0,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part``; verify the checksum; rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if algorithm == "-" or file_digest(dest, algorithm) == digest:
            return dest
        dest.unlink()  # a complete file that fails its checksum cannot be resumed
    part = dest.with_name(dest.name + ".part")
    headers = {"User-Agent": "scpc-download"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    failures = 0
    while True:
        offset = part.stat().st_size if part.exists() else 0
        req_headers = dict(headers, **({"Range": f"bytes={offset}-"} if offset else {}))
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=req_headers), timeout=timeout
            ) as resp:
                if offset and resp.status != 206:
                    offset = 0  # the server ignored the range: start again
                length = resp.headers.get("Content-Length")
                total = offset + int(length) if length is not None else None
                with (
                    open(part, "ab" if offset else "wb") as f,
                    _progress(total, offset, dest.name) as bar,
                ):
                    while block := resp.read(CHUNK):
                        f.write(block)
                        bar.update(len(block))
            size = part.stat().st_size
            if total is not None and size < total:
                raise ConnectionError(f"connection closed after {size} of {total} bytes")
            break
        except urllib.error.HTTPError as e:
            if e.code == 416 and offset:
                break  # nothing left to fetch: the part file is already complete
            if e.code in (401, 403):
                raise ScpcError(
                    f"{url}: HTTP {e.code} {e.reason}: access denied (check credentials)"
                ) from None
            if e.code == 404:
                raise ScpcError(f"{url}: HTTP 404: no such file (check the mirror)") from None
            reason = f"HTTP {e.code} {e.reason}"
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            ConnectionError,
            TimeoutError,
        ) as e:
            reason = str(getattr(e, "reason", e))
        except OSError as e:
            raise ScpcError(f"{part}: cannot write ({e.strerror})") from None
        failures += 1
        if failures > retries:
            raise ScpcError(
                f"{url}: download failed after {retries} retries ({reason}); "
                f"re-run to resume from {part.stat().st_size if part.exists() else 0} bytes"
            )
        print(
            f"scpc-download: {dest.name}: {reason}; retrying ({failures}/{retries})",
            file=sys.stderr,
        )
        time.sleep(retry_wait * failures)
    if algorithm != "-":
        got = file_digest(part, algorithm)
        if got != digest:
            part.unlink()
            raise ScpcError(
                f"{dest.name}: {algorithm} checksum mismatch (expected {digest}, got {got}); "
                "the download was removed, re-run to fetch it again"
            )
    os.replace(part, dest)
    return dest


def _merge_into(src: Path, dest: Path) -> None:
    """Move a freshly extracted tree into place, directory by directory."""
    dest.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        target = dest / entry.name
        if entry.is_dir() and target.is_dir():
            _merge_into(entry, target)
        else:
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(entry, target)


def extract(archive: Path, dest: Path) -> None:
    """Extract a .tar.gz/.tgz/.tar or .zip into ``dest``: first into a hidden temporary
    directory beside it, then moved into place, so an interruption leaves no partial tree."""
    tmp = dest.parent / f".extract-{archive.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                bad = z.testzip()
                if bad is not None:
                    raise ScpcError(f"{archive}: corrupt member {bad}")
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                t.extractall(tmp, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ScpcError(f"{archive}: corrupt or truncated archive ({e})") from None
    _merge_into(tmp, dest)
    shutil.rmtree(tmp)


def is_archive(name: str) -> bool:
    return name.endswith((".tar.gz", ".tgz", ".tar", ".zip"))


def get(
    resource: Resource,
    dest_dir: Path,
    mirror: str | None = None,
    auth: tuple[str, str] | None = None,
    keep_archive: bool = False,
    retries: int = 5,
    retry_wait: float = 5.0,
) -> str:
    """Download (and extract) one resource into ``dest_dir``; skip it if already done.

    Returns what happened: "present", "downloaded" or "extracted".
    """
    marker = dest_dir / f".{resource.name}.complete"
    if marker.exists():
        return "present"
    url = resource.url.replace("{mirror}", (mirror or "").rstrip("/"))
    if "{mirror}" in resource.url and not mirror:
        raise ScpcError(f"{resource.name}: its URL needs a mirror (--mirror)")
    target = dest_dir / resource.name
    fetch(
        url,
        dest=target,
        algorithm=resource.algorithm,
        digest=resource.digest,
        auth=auth,
        retries=retries,
        retry_wait=retry_wait,
    )
    if resource.algorithm == "-":
        print(
            f"scpc-download: {resource.name}: no published checksum; "
            f"sha256 {file_digest(target, 'sha256')}",
            file=sys.stderr,
        )
    if not is_archive(resource.name):
        marker.write_text(f"{resource.algorithm} {resource.digest}\n")
        return "downloaded"
    extract(target, dest_dir / resource.into)
    marker.write_text(f"{resource.algorithm} {resource.digest}\n")
    if not keep_archive:
        target.unlink()
    return "extracted"
