"""What every verb shares: the one error path, argparse number types, input-file and output checks.

Rules the CLI keeps for every verb (stated in ``torchworks --help`` and the README):

* a user error (missing, binary or wrong-type file, unknown name, number out of range, unwritable output) prints
  ONE line ``torchworks VERB: error: ...`` on stderr and exits with 2, before any output file is written;
  ``TORCHWORKS_DEBUG=1`` re-raises it with its traceback;
* every verb that writes takes ``-o``/``--out``; missing parent folders of that path are created; files are
  written atomically (a temporary file renamed into place), so a failed run leaves no partial file.

Only the standard library is imported here: ``torchworks --help`` stays fast.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

EXIT_USER_ERROR = 2
OUT_RULE = "missing parent folders are created"

# The first bytes of formats a user may hand to a verb that wants text (a YAML config, a CSV, sentences).
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"RIFF", "a RIFF (WebP/WAV) file"), (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"),
    (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive (or a torch.save file)"),
    (b"\x1f\x8b", "a gzip archive"), (b"\x93NUMPY", "a NumPy .npy array"), (b"BZh", "a bzip2 archive"),
    (b"\x7fELF", "an executable"), (b"\x80\x02", "a pickle"), (b"\x80\x04", "a pickle"), (b"\x80\x05", "a pickle"),
)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) that suggest close matches for an invalid choice.

    Sub-parsers made through ``add_subparsers`` are of this class too (argparse uses the parent's class).
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        # "argument --horizon: must be >= 1, got 0" reads better as "--horizon must be >= 1, got 0"
        m = re.match(r"argument (-[^:]+): (.*)$", message, re.S)
        if m and any(m[2].startswith(f"{flag} ") for flag in m[1].split("/")):
            message = m[2]
        elif m and m[2].startswith(("must be ", "expected ")):
            message = f"{m[1]} {m[2]}"
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def _check_value(self, action: argparse.Action, value: object) -> None:
        choices = action.choices
        if choices is not None and value not in choices and isinstance(value, str):
            names = [str(c) for c in choices]
            raise argparse.ArgumentError(action, f"invalid choice {value!r}; {did_you_mean(value, names)}"
                                         f"choose from {', '.join(names)}")
        super()._check_value(action, value)


def did_you_mean(name: str, names: Iterable[str]) -> str:
    """``"did you mean a, b? "`` for the names close to ``name`` (empty when none is)."""
    names = list(names)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    close += [n for n in names if name and name.lower() in n.lower() and n not in close][: 3 - len(close)]
    return f"did you mean {', '.join(close)}? " if close else ""


def check_names(text: str, known: Sequence[str], what: str, flag: str) -> list[str]:
    """The comma-separated names of ``text``; raises ConfigError naming the first unknown one and close matches."""
    from torchworks.core.errors import ConfigError

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"{flag} names no {what}; choose from {', '.join(known)}")
    for name in names:
        if name not in known:
            raise ConfigError(f"unknown {what} {name!r} in {flag}; {did_you_mean(name, known)}"
                              f"choose from {', '.join(known)}")
    return names


# ---------------------------------------------------------------- numbers (argparse types)

def _bounds(lo: float | None, hi: float | None, lo_open: bool = False) -> str:
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo}"
    if lo is None:
        return f"<= {hi}"
    return f"in ({lo}, {hi}]" if lo_open else f"in {lo}..{hi}"


def int_in(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer in ``[lo, hi]`` (either bound may be None)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {_bounds(lo, hi)}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def float_in(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Callable[[str], float]:
    """argparse type: a finite number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``); nan and inf are refused."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if (lo is not None and (value <= lo if lo_open else value < lo)) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {_bounds(lo, hi, lo_open)}, got {value:g}")
        return value

    parse.__name__ = "number"
    return parse


positive_int = int_in(1)
non_negative_int = int_in(0)


# ---------------------------------------------------------------- input files

def input_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a Path when it names an existing file; FileNotFoundError / IsADirectoryError otherwise."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise IsADirectoryError(f"{what} {p} is a folder, not a file")
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}")
    return p


def sniff(head: bytes) -> str | None:
    """What a file whose first bytes are ``head`` is, when it is a binary format a text reader should refuse."""
    for magic, name in _SIGNATURES:
        if head.startswith(magic):
            return name
    return None


def read_text(path: str | os.PathLike[str], what: str, kind: str = "a UTF-8 text file") -> str:
    """The UTF-8 text of an input file (BOM dropped), or one clear error: missing, a folder, binary, not UTF-8.

    Args:
        path: The file.
        what: How the message names it, e.g. ``"config"`` or ``"--file"``.
        kind: What it should be, for the message, e.g. ``"a YAML config"``.

    Raises:
        FileNotFoundError, IsADirectoryError: as :func:`input_file`.
        ConfigError: the file is a known binary format, holds NUL bytes, or is not UTF-8.
    """
    from torchworks.core.errors import ConfigError

    p = input_file(path, what)
    data = p.read_bytes()
    found = sniff(data[:16])
    if found is not None:
        raise ConfigError(f"{what} {p} is {found}, not {kind}")
    if b"\x00" in data[:65536]:
        raise ConfigError(f"{what} {p} is binary data (NUL bytes), not {kind}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{what} {p} is not {kind}: byte {exc.start} (line {line}) is not UTF-8") from None


# ---------------------------------------------------------------- outputs

def add_out(parser: argparse.ArgumentParser, help: str, *, type: Callable[[str], str] | None = None,
            dest: str = "out", metavar: str = "PATH", default: str | None = None, aliases: Sequence[str] = ()) -> None:
    """Adds ``-o``/``--out`` (plus ``aliases``) with the shared folder rule appended to ``help``.

    ``type`` is :func:`out_file`, :func:`out_dir` or :func:`out_path`: the path is checked while parsing.
    """
    parser.add_argument("-o", "--out", *aliases, dest=dest, metavar=metavar, default=default,
                        type=type or out_file, help=f"{help}; {OUT_RULE}")


def _out_type(folder: bool | None) -> Callable[[str], str]:
    def parse(text: str) -> str:
        from torchworks.core.errors import ConfigError

        try:
            check_out(text, "", folder=folder)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    parse.__name__ = "path"
    return parse


out_file = _out_type(False)  # argparse type: an output file that can be written
out_dir = _out_type(True)  # argparse type: an output folder that can be created or written into
out_path = _out_type(None)  # argparse type: an output file or folder (e.g. a batch's folder)


def check_out(path: str | os.PathLike[str] | None, flag: str = "--out", *, folder: bool | None = False) -> Path | None:
    """Checks before any work that ``path`` can be written (creating its missing parents); creates nothing.

    Args:
        path: The output file (or folder with ``folder=True``; either with None); None passes through.
        flag: How the message names it.
        folder: The output is a folder (a run directory) rather than a file.

    Raises:
        ConfigError: the path is a folder where a file is wanted (or the reverse), an ancestor is a file, or the
            nearest existing folder is not writable.
    """
    from torchworks.core.errors import ConfigError

    if path is None:
        return None
    p = Path(path).expanduser()
    if str(path) == "":
        raise ConfigError(f"{flag} is empty; give a path".strip())
    what = f"{flag} {p}".strip()
    if p.is_dir() and folder is False:
        raise ConfigError(f"{what} is a folder; give a file name")
    if p.exists() and not p.is_dir() and folder:
        raise ConfigError(f"{what} is a file; give a folder")
    anc = p if (folder or p.is_dir()) else p.parent
    while not anc.exists() and anc != anc.parent:
        if anc.is_symlink():  # a dangling link: creating folders through it would fail later
            break
        anc = anc.parent
    if not anc.is_dir():
        raise ConfigError(f"cannot write {what}: {anc} is not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {what}: the folder {anc} is not writable")
    return p


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """:func:`torchworks.core.atomic.atomic_write_bytes`, imported when a verb writes (parents created)."""
    from torchworks.core.atomic import atomic_write_bytes as write

    return write(path, data)


# ---------------------------------------------------------------- the one error path

def user_error_message(exc: BaseException) -> str | None:
    """The one-line message for an error the user caused, or None for a bug (which keeps its traceback).

    User errors: :class:`~torchworks.core.errors.TorchworksError`, ``ValueError`` (the library's documented type
    for bad input, including undecodable text) and ``OSError`` (missing, unreadable or unwritable paths).
    """
    from torchworks.core.errors import TorchworksError

    if isinstance(exc, UnicodeDecodeError):
        text = f"input is not UTF-8 text (byte {exc.start}: {exc.reason})"
    elif isinstance(exc, OSError) and not isinstance(exc, TorchworksError) and exc.strerror and exc.filename:
        text = f"{exc.strerror}: {exc.filename}"
    elif isinstance(exc, TorchworksError | ValueError | OSError):
        text = str(exc) or type(exc).__name__
    else:
        return None
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def verb_name(args: argparse.Namespace) -> str:
    """``"geometry convert-pose"``: the verb and its action (sub-parsers store it as ``<verb>_verb``)."""
    action = getattr(args, f"{args.verb}_verb", None)
    return f"{args.verb} {action}" if isinstance(action, str) else str(args.verb)


def run_guarded(verb: str, call: Callable[[], int]) -> int:
    """Runs a verb: user errors become one line on stderr and exit code 2; bugs keep their traceback."""
    try:
        return call()
    except KeyboardInterrupt:
        print("torchworks: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        message = user_error_message(exc)
        if message is None or os.environ.get("TORCHWORKS_DEBUG"):
            raise
        print(f"torchworks {verb}: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """``parser.parse_args(argv)``, or the exit code argparse asked for (``--help``: 0, a bad flag: 2)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR


def standalone_main(add_parser: Callable[[argparse._SubParsersAction], object], run: Callable, argv) -> int:
    """``python -m torchworks.cli.<verb>_cmd ...``: the verb module's own parser with the main CLI's conventions."""
    parser = ArgumentParser(prog="torchworks")
    add_parser(parser.add_subparsers(dest="verb", metavar="VERB", required=True))
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args
    return run_guarded(verb_name(args), lambda: run(args))
