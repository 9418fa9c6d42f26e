"""The SUPERB task registry: name -> Task class, imported on first use.

Names map to ``"module:Class"`` strings so that one task's module (or a missing one) does
not stop the others from loading. A module whose class has another name still works when it
holds exactly one Task subclass whose ``name`` is the task's name.
"""

from __future__ import annotations

import importlib

from scpc.downstream.task import Task
from scpc.errors import ScpcError

# SUPERB's five tasks in its order, then s3prl's legacy probes
TASKS: dict[str, str] = {
    "pr": "scpc.downstream.tasks.pr:PhoneRecognition",
    "asr": "scpc.downstream.tasks.asr:SpeechRecognition",
    "ks": "scpc.downstream.tasks.ks:KeywordSpotting",
    "sid": "scpc.downstream.tasks.sid:SpeakerIdentification",
    "asv": "scpc.downstream.tasks.asv:SpeakerVerification",
    "phone_linear": "scpc.downstream.tasks.phone_frame:PhoneLinear",
    "phone_1hidden": "scpc.downstream.tasks.phone_frame:PhoneOneHidden",
    "phone_concat": "scpc.downstream.tasks.phone_frame:PhoneConcat",
    "spk_frame": "scpc.downstream.tasks.speaker:SpeakerFrame",
    "spk_utt": "scpc.downstream.tasks.speaker:SpeakerUtterance",
}


def task_class(name: str) -> type[Task]:
    """The Task class registered as ``name``; an unknown or unavailable task is a ScpcError."""
    try:
        target = TASKS[name]
    except KeyError:
        raise ScpcError(f"unknown task {name!r} (tasks: {', '.join(sorted(TASKS))})") from None
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        raise ScpcError(f"task {name!r}: its module {module_name} is not installed") from None
    cls = getattr(module, cls_name, None)
    if cls is None:  # another class name: the module's Task subclass of that name
        found = [
            c
            for c in vars(module).values()
            if isinstance(c, type) and issubclass(c, Task) and c.name == name
        ]
        if len(found) != 1:
            raise ScpcError(f"task {name!r}: {module_name} has no class {cls_name}")
        cls = found[0]
    return cls


def make_task(name: str) -> Task:
    return task_class(name)()
