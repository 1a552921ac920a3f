"""Reading a checkpoint file with torch.load(weights_only=True), and saying plainly what is
wrong with a file that cannot be read:

    not a PyTorch checkpoint   an image, random bytes, a plain pickle, some other zip archive
    truncated or corrupt       a torch.save file cut short (interrupted copy, download or save)
    unsafe                     a torch.save file holding pickled Python objects (classes,
                               functions) that weights_only loading refuses; nothing in it runs
"""
from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile

import torch

from .errors import CorruptCheckpointError, MissingFileError, NotACheckpointError, UnsafeCheckpointError

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL_2_OR_LATER = b"\x80"
# torch.save's legacy (non-zip) format starts with this pickled magic number.
_LEGACY_TORCH_HEADER = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
# torch names the global its weights-only unpickler refused ("Unsupported global: GLOBAL
# builtins.open", "unsupported GLOBAL posix.system whose module posix is blocked").
_UNSAFE_GLOBAL = re.compile(r"GLOBAL ([\w.]+)", re.IGNORECASE)
_WEIGHTS_ONLY_REFUSAL = "Weights only load failed"
_OTHER_FILE_KINDS = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                     (b"BM", "a BMP image"), (b"RIFF", "a RIFF file (WebP image, WAV...)"),
                     (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"%PDF", "a PDF document"),
                     (b"\x1f\x8b", "a gzip archive"), (b"<", "an HTML/XML page (a failed download?)"))
_HEADER_BYTES = len(_LEGACY_TORCH_HEADER)


def describe_path(path, kind="checkpoint file") -> str:
    return f"{kind} '{os.fspath(path)}'"


def read_checkpoint_file(path, kind="checkpoint file"):
    """The object torch.save wrote to `path`, read with weights_only=True onto the CPU.

    Raises FileNotFoundError, or a CheckpointError subclass naming the file (as `kind`):
    NotACheckpointError, CorruptCheckpointError or UnsafeCheckpointError.
    """
    where = describe_path(path, kind)
    if os.path.isdir(path):
        raise NotACheckpointError(f"{where} is a folder; pass the checkpoint file in it (e.g. latest.pt)")
    if not os.path.isfile(path):
        raise MissingFileError(f"{where}: no such file")
    with open(path, "rb") as f:
        header = f.read(_HEADER_BYTES)
    _refuse_files_torch_did_not_write(path, where, header)
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols before failing
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch reports damage as RuntimeError, EOFError, KeyError, ...
        raise _explain_load_failure(where, header, error) from None


def _explain_load_failure(where, header, error):
    """The error to raise for a file torch.load(weights_only=True) failed on. Never passes on
    torch's advice to retry with weights_only=False: that would run whatever the file holds."""
    unsafe = _UNSAFE_GLOBAL.search(str(error)) if isinstance(error, pickle.UnpicklingError) else None
    if unsafe:
        return UnsafeCheckpointError(
            f"{where} is unsafe: it contains pickled Python objects that weights_only loading refuses; "
            f"unpickling it would import and call {unsafe.group(1)}, which could run code from the file, "
            "so nothing in it was run. If you trust its origin, load it yourself and re-save only its "
            "tensors (a state_dict)")
    if not header.startswith((_ZIP_MAGIC, _LEGACY_TORCH_HEADER)):
        return NotACheckpointError(f"{where} is not a PyTorch checkpoint: it is a Python pickle that "
                                   "torch.save did not write")
    return _corrupt(where, _first_line(error))


def _refuse_files_torch_did_not_write(path, where, header):
    if not header:
        raise NotACheckpointError(f"{where} is not a PyTorch checkpoint: the file is empty (0 bytes)")
    if header.startswith(_ZIP_MAGIC):
        _check_zip(path, where)
        return
    if header.startswith(_PICKLE_PROTOCOL_2_OR_LATER):
        return  # torch's legacy format, or a plain pickle: torch.load tells them apart
    kind = next((name for magic, name in _OTHER_FILE_KINDS if header.startswith(magic)), None)
    found = f"it is {kind}" if kind else f"it starts with bytes {header[:8].hex(' ')}"
    raise NotACheckpointError(f"{where} is not a PyTorch checkpoint: {found}, not a file written by torch.save")


def _check_zip(path, where):
    """torch.save's zip archives hold <name>/data.pkl; a cut-short one has no central directory."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise _corrupt(where, f"the zip archive cannot be opened ({error})") from None
    if not any(name.endswith("data.pkl") for name in names):
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise NotACheckpointError(f"{where} is not a PyTorch checkpoint: it is a zip archive without "
                                  f"torch.save's data.pkl (it holds {shown or 'nothing'})")


def _corrupt(where, detail):
    return CorruptCheckpointError(f"{where} is truncated or corrupt: {detail}. It was probably cut short by "
                                  "an interrupted copy, download or save; use an intact copy")


def _first_line(error):
    """The first line of torch's message that states a reason, not its advice about weights_only."""
    lines = [line.strip() for line in str(error).splitlines()]
    reasons = [line for line in lines if line and not _is_torch_advice(line)]
    return reasons[0].rstrip(".") if reasons else type(error).__name__


def _is_torch_advice(line):
    return line.startswith(_WEIGHTS_ONLY_REFUSAL) or "weights_only" in line or "trusted source" in line
