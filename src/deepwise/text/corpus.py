"""An English text corpus that is always there: the docstrings of Python's own standard library.

``load_stdlib_docstrings()`` imports a fixed list of pure, always-present stdlib modules and takes,
in a fixed order, the docstring of each module and of the classes, functions and methods it defines
(sorted by name; objects re-exported from elsewhere are skipped, duplicates kept once). Text is
reduced to printable ASCII plus newlines (``ASCII_ALPHABET``, 96 characters), so a character model has
a fixed vocabulary. Nothing is downloaded. The same Python version gives the same text; other
versions give a slightly different one (the docstrings change between releases).

Licence: the docstrings are part of CPython, under the Python Software Foundation License
(https://docs.python.org/3/license.html).
"""

from __future__ import annotations

import importlib
import inspect
import re
import unicodedata
import warnings

__all__ = ["ASCII_ALPHABET", "STDLIB_MODULES", "load_stdlib_docstrings", "to_ascii"]

ASCII_ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))

STDLIB_MODULES = (
    "abc", "argparse", "ast", "base64", "bisect", "calendar", "cmd", "codecs", "collections", "colorsys",
    "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "difflib", "dis", "email.message",
    "enum", "filecmp", "fnmatch", "fractions", "ftplib", "functools", "getopt", "gettext", "glob", "gzip",
    "heapq", "hmac", "html.parser", "http.client", "http.server", "imaplib", "inspect", "ipaddress", "json",
    "json.decoder", "logging", "logging.handlers", "mailbox", "mimetypes", "numbers", "opcode", "operator",
    "optparse", "os", "pathlib", "pdb", "pkgutil", "platform", "poplib", "pprint", "pydoc", "queue",
    "quopri", "random", "re", "sched", "secrets", "selectors", "shlex", "shutil", "smtplib", "socket",
    "socketserver", "statistics", "string", "subprocess", "symtable", "tabnanny", "tarfile", "tempfile",
    "textwrap", "threading", "timeit", "token", "tokenize", "trace", "traceback", "types", "typing",
    "unittest.case", "unittest.mock", "urllib.parse", "urllib.request", "uuid", "warnings", "wave",
    "weakref", "webbrowser", "zipfile",
)

_BLANKS = re.compile(r"\n{3,}")


def to_ascii(text: str) -> str:
    """``text`` in ``ASCII_ALPHABET``: accents stripped (NFKD), tabs as 4 spaces, other characters dropped."""
    text = unicodedata.normalize("NFKD", text).replace("\t", "    ").replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch for ch in text if ch == "\n" or " " <= ch <= "~")


def _members(module):
    """(qualified name, object) of the module's own classes and functions and the classes' methods."""
    out = []
    for name, obj in sorted(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj):
            out.append((name, obj))
            for mname, meth in sorted(vars(obj).items()):
                if mname.startswith("_") and mname != "__init__":
                    continue
                fn = meth.__func__ if isinstance(meth, (classmethod, staticmethod)) else meth
                if inspect.isfunction(fn) or isinstance(meth, property):
                    out.append((f"{name}.{mname}", fn))
        elif inspect.isfunction(obj):
            out.append((name, obj))
    return out


def load_stdlib_docstrings(max_chars: int | None = None) -> str:
    """The docstrings of ``STDLIB_MODULES`` as one ASCII text (documents separated by a blank line),
    cut to ``max_chars`` characters if given. About 590,000 characters on CPython 3.11."""
    if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1):
        raise ValueError(f"load_stdlib_docstrings: max_chars must be a positive int or None, got {max_chars!r}")
    with warnings.catch_warnings():  # touching deprecated aliases (typing.io, ...) warns; we only read docs
        warnings.simplefilter("ignore", DeprecationWarning)
        return _collect(max_chars)


def _collect(max_chars):
    docs, seen, total = [], set(), 0
    for modname in STDLIB_MODULES:
        try:
            module = importlib.import_module(modname)
        except ImportError:  # a stripped-down Python without this module: the text is simply shorter
            continue
        for _, obj in [(modname, module)] + _members(module):
            doc = obj.__doc__ if isinstance(obj.__doc__, str) else None
            if not doc:
                continue
            doc = to_ascii(inspect.cleandoc(doc)).strip()
            if len(doc) < 20 or doc in seen:
                continue
            seen.add(doc)
            docs.append(_BLANKS.sub("\n\n", doc))
            total += len(doc) + 2
            if max_chars is not None and total >= max_chars:
                return "\n\n".join(docs)[:max_chars]
    text = "\n\n".join(docs)
    return text if max_chars is None else text[:max_chars]
