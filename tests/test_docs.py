"""Docstrings against signatures, over the public API (every name in the ``__all__`` of the public modules).

- every name listed in an ``__all__`` exists;
- every public function, class and public method defined in oceandl has a docstring;
- every name in a numpydoc ``Parameters`` section (``name : type``, ``a, b : type``, ``*args``,
  ``**kwargs``, or a bare ``name``) is a parameter of the signature it documents: a function's own, a
  class's ``__init__`` (or a dataclass's generated one);
- a class with ``option_defaults`` (the interpolation methods) documents each option in an ``Options``
  section (its own or a base class's), no other name, and a ``default X`` quoted there is the default.

Parameters that the docstring leaves out are not flagged: many docstrings describe only the options that
need words. A renamed or removed parameter that is still described is what misleads a reader.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re

import pytest

MODULES = ["oceandl", "oceandl.io", "oceandl.interp", "oceandl.models", "oceandl.training", "oceandl.metrics",
           "oceandl.datasets", "oceandl.utils", "oceandl.pipelines"]

_SECTION = re.compile(r"^([ \t]*)([A-Z][^\n]*)\n\1-{3,}[ \t]*$", re.M)
_NAME = re.compile(r"^\*{0,2}[A-Za-z_][A-Za-z0-9_]*$")


def section_entries(doc: str | None, sections=("Parameters", "Other Parameters")) -> list[tuple[str, str]]:
    """(name, type text) of each entry of the numpydoc sections ``sections`` of ``doc``.

    An entry is a line at the section's indent: ``names : type`` or a bare ``names``; ``names`` may group
    several (``seed, device``), each comes back with the same type text. Anything else at the entry indent
    (a type wrapped onto a second line, say) comes back as written so that the caller reports it: numpydoc
    renderers read it as a parameter too.
    """
    if not doc:
        return []
    doc = inspect.cleandoc(doc)
    heads = list(_SECTION.finditer(doc))
    entries: list[tuple[str, str]] = []
    for i, m in enumerate(heads):
        if m.group(2).strip() not in sections:
            continue
        end = heads[i + 1].start() if i + 1 < len(heads) else len(doc)
        body = doc[m.end():end].split("\n")
        indent = len(m.group(1))
        for line in body:
            if not line.strip():
                continue
            lead = len(line) - len(line.lstrip())
            if lead < indent:  # text after the section at a lower indent: the section is over
                break
            if lead > indent:  # description
                continue
            head, _, kind = line.strip().partition(" : ")
            entries += [(n.strip(), kind.strip()) for n in head.rstrip(":").split(",")]
    return entries


def parameter_names(doc: str | None) -> list[str]:
    """Names described in the numpydoc ``Parameters`` sections of ``doc``."""
    return [n for n, _ in section_entries(doc)]


def _signature_names(obj) -> tuple[set[str], bool, bool] | None:
    """(parameter names, has *args, has **kwargs) of a callable, or None when it has no signature."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    names = set(sig.parameters)
    var_pos = any(p.kind is p.VAR_POSITIONAL for p in sig.parameters.values())
    var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            names.add("*" + p.name)
        elif p.kind is p.VAR_KEYWORD:
            names.add("**" + p.name)
    return names, var_pos, var_kw


def check_parameters(where: str, doc: str | None, target) -> list[str]:
    """Problems of the Parameters section of ``doc`` read against the signature of ``target``."""
    described = parameter_names(doc)
    if not described:
        return []
    sig = _signature_names(target)
    if sig is None:
        return []
    names, var_pos, var_kw = sig
    problems = []
    for n in described:
        if not _NAME.match(n):
            problems.append(f"{where}: Parameters entry {n!r} is not a parameter name (a wrapped type line?)")
            continue
        bare = n.lstrip("*")
        if n in names or bare in names:
            continue
        # `*args` / `**kwargs` described under another name than the signature's own
        if (n.startswith("**") and var_kw) or (n.startswith("*") and not n.startswith("**") and var_pos):
            continue
        problems.append(f"{where}: documents parameter {n!r}, not in the signature {sorted(names)}")
    return problems


def check_options(where: str, cls) -> list[str]:
    """Problems of the ``Options`` sections of an Interpolator class (its own and its bases') against
    ``cls.option_defaults``: every option documented, no other name, and a quoted ``default X`` equal to the
    default."""
    defaults = cls.option_defaults
    entries = [e for c in cls.__mro__ for e in section_entries(c.__doc__, ("Options",))]
    problems = []
    for name, kind in entries:
        if name not in defaults:
            problems.append(f"{where}: Options documents {name!r}, not an option (options: {sorted(defaults)})")
            continue
        m = re.search(r"default (\S+?)(?:,|\s\(|$)", kind)
        if m:
            try:
                quoted = ast.literal_eval(m.group(1))
            except (ValueError, SyntaxError):
                problems.append(f"{where}: option {name}: cannot read the default in {kind!r}")
                continue
            if quoted != defaults[name] or isinstance(quoted, bool) != isinstance(defaults[name], bool):
                problems.append(f"{where}: option {name}: documented default {quoted!r}, actual {defaults[name]!r}")
    missing = sorted(set(defaults) - {n for n, _ in entries})
    if missing:
        problems.append(f"{where}: options not documented in an Options section: {missing}")
    return problems


def _defined_here(obj) -> bool:
    mod = getattr(obj, "__module__", None) or ""
    return mod == "oceandl" or mod.startswith("oceandl.")


def _public_submodules() -> list[str]:
    """The non-underscore modules inside the packages of MODULES (``oceandl.interp.dineof``, ...): their
    ``__all__`` is public API too (documented paths such as ``oceandl.interp.chunked.interpolate_chunked``)."""
    import pkgutil

    out = []
    for pkg in MODULES:
        mod = importlib.import_module(pkg)
        for info in pkgutil.iter_modules(getattr(mod, "__path__", [])):
            if not info.name.startswith("_"):
                out.append(f"{pkg}.{info.name}")
    return out


def _public_objects():
    """(module name, name, object) for every name of every ``__all__``: MODULES, the modules listed in those
    ``__all__``, and the public submodules of MODULES' packages that define one."""
    todo, seen = list(MODULES), set()
    todo += [m for m in _public_submodules() if hasattr(importlib.import_module(m), "__all__")]
    while todo:
        modname = todo.pop(0)
        if modname in seen:
            continue
        seen.add(modname)
        mod = importlib.import_module(modname)
        assert hasattr(mod, "__all__"), f"{modname} has no __all__"
        for name in mod.__all__:
            obj = getattr(mod, name, _MISSING)
            if inspect.ismodule(obj) and obj.__name__.startswith("oceandl.") and hasattr(obj, "__all__"):
                todo.append(obj.__name__)
            yield modname, name, obj


_MISSING = object()


def _audit() -> list[str]:
    problems: list[str] = []
    done: set[int] = set()
    for modname, name, obj in _public_objects():
        where = f"{modname}.{name}"
        if obj is _MISSING:
            problems.append(f"{where}: listed in __all__ but not defined")
            continue
        if id(obj) in done:
            continue
        done.add(id(obj))
        if inspect.ismodule(obj):
            continue
        if inspect.isclass(obj):
            if not _defined_here(obj):
                continue
            if not (obj.__doc__ or "").strip():
                problems.append(f"{where}: class without a docstring")
            # the class docstring documents __init__
            problems += check_parameters(where, obj.__doc__, obj)
            if isinstance(getattr(obj, "option_defaults", None), dict):
                problems += check_options(where, obj)
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr != "__init__":
                    continue
                func = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                if isinstance(func, property):
                    func = func.fget
                if not inspect.isfunction(func):
                    continue
                mwhere = f"{where}.{attr}"
                if attr != "__init__" and not (func.__doc__ or "").strip() and not _inherits_doc(obj, attr):
                    problems.append(f"{mwhere}: public method without a docstring")
                problems += check_parameters(mwhere, func.__doc__, getattr(obj, attr) if attr != "__init__" else func)
        elif callable(obj) and (inspect.isfunction(obj) or _defined_here(obj)):
            if inspect.isfunction(obj) and not _defined_here(obj):
                continue
            if not (getattr(obj, "__doc__", None) or "").strip():
                problems.append(f"{where}: function without a docstring")
            problems += check_parameters(where, obj.__doc__, obj)
    return problems


def _inherits_doc(cls, attr: str) -> bool:
    """An override documented by the base class it overrides (help() shows the base's text)."""
    return any((getattr(getattr(base, attr, None), "__doc__", None) or "").strip() for base in cls.__mro__[1:])


def test_public_docstrings_match_signatures():
    problems = _audit()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc, names", [
    ("""Do.

    Parameters
    ----------
    a : int
        A.
    lat, lon, time : str
        Names.
    *args
        More.
    **options
        Keywords.

    Returns
    -------
    x : int
    """, ["a", "lat", "lon", "time", "*args", "**options"]),
    ("No sections.", []),
])
def test_parameter_parser(doc, names):
    assert parameter_names(doc) == names


def test_checker_flags_a_stale_name():
    def f(a, *, b=1):
        """F.

        Parameters
        ----------
        a : int
        c : int
            Renamed to b.
        """

    assert check_parameters("f", f.__doc__, f) == ["f: documents parameter 'c', not in the signature ['a', 'b']"]


def test_checker_flags_a_wrong_option_default():
    class Method:
        """M.

        Options
        -------
        n_modes : int, default 5
        tol : float, default 1e-3 (relative)
        gone : bool
        """

        option_defaults = {"n_modes": 4, "tol": 1e-3, "center": True}

    assert check_options("M", Method) == [
        "M: option n_modes: documented default 5, actual 4",
        "M: Options documents 'gone', not an option (options: ['center', 'n_modes', 'tol'])",
        "M: options not documented in an Options section: ['center']",
    ]


def _commands(group, path=()):
    import click

    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))
        else:
            yield " ".join((*path, name)), cmd


def test_every_cli_option_has_help():
    """Each option of each command says what it does in --help (arguments are named in the usage line)."""
    import click

    from oceandl.cli.main import cli

    missing = [f"oceandl {name} {'/'.join(p.opts)}" for name, cmd in _commands(cli) for p in cmd.params
               if isinstance(p, click.Option) and not (p.help or "").strip()]
    assert not missing, "options without a help text: " + ", ".join(missing)


def test_cli_training_defaults_quoted_in_help():
    """--epochs/--batch-size/--lr default to None and say in their help what None stands for: for
    ``interpolate`` and ``train interpolator`` the numbers quoted are the neural methods' option defaults."""
    from click.testing import CliRunner

    from oceandl.cli.main import cli
    from oceandl.interp.neural import NeuralInterpolator, SMPUnetInterpolator

    o = NeuralInterpolator.option_defaults
    for cmd in (["interpolate"], ["train", "interpolator"]):
        text = " ".join(CliRunner().invoke(cli, [*cmd, "--help"], terminal_width=1000).output.split())
        assert f"{NeuralInterpolator.default_steps} optimiser steps (smp_unet {SMPUnetInterpolator.default_steps};" \
            in text
        assert f"default: {o['batch_size']} patches" in text
        assert float(re.search(r"Learning rate \(.*?default: ([0-9.e+-]+)\)", text).group(1)) == o["lr"]
