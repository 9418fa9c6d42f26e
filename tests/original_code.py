"""The original systems' model code, where it imports offline: s3prl 0.4.18 (in .venv) carries
the model code of CPC_audio, Mockingjay, TERA and AALBERT. Its modules import torchaudio at
the top, which does not load on this machine; a stand-in that fails on use takes its place
(the model classes never call it)."""

from __future__ import annotations

import importlib
import sys
import types


class _Unusable(types.ModuleType):
    """Any attribute is a function that fails when called (imports succeed, uses do not)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def unusable(*args, **kwargs):
            raise RuntimeError(f"{self.__name__}.{name} is a stand-in in scpc's tests")

        return unusable


def _torchaudio_importable() -> bool:
    try:
        importlib.import_module("torchaudio")
    except (ImportError, OSError):
        for key in [k for k in sys.modules if k.split(".")[0] == "torchaudio"]:
            del sys.modules[key]
        return False
    return True


def s3prl_module(name: str) -> types.ModuleType:
    """``s3prl.<name>``, importing it with a torchaudio stand-in if torchaudio cannot load."""
    if "torchaudio" not in sys.modules and not _torchaudio_importable():
        stub = _Unusable("torchaudio")
        stub.__path__ = []
        sys.modules["torchaudio"] = stub
        for sub in ("compliance", "compliance.kaldi", "functional", "transforms"):
            sys.modules[f"torchaudio.{sub}"] = _Unusable(f"torchaudio.{sub}")
    return importlib.import_module(f"s3prl.{name}")
