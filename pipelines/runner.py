"""The benchmark runner: resolve a config, run a pipeline, write its run folder atomically.

A run folder holds ``results.json``, ``results.md`` (the table, what its columns mean and its
rounding, the pipeline's notes, then the command that runs it again, the start date, the resolved
config, seed, versions and git commit), ``run.json`` (the provenance alone) and the pipeline's
figures. It is written under a temporary name and renamed
when complete, so an interrupted run leaves no half-written folder and never replaces an old one
without ``overwrite``.

``results.json`` has the same top-level keys in every pipeline (:data:`RESULTS_KEYS`), so that the
file alone says what ran and can be fed back (``--config results.json`` runs its config again):

- ``pipeline``: the benchmark's name; ``results``: each row name (model, method, case) mapped to
  its metrics (the pipeline's own; NaN and infinities as ``null``);
- ``config``: the resolved config (a ``--fast`` run's smoke-run sizes included; its paths, such as
  ``data``, absolute: :func:`absolute_paths`), ``seed``, ``device``, ``command`` (the
  ``oceandl benchmark`` line that runs it again, ``-o`` absolute too), ``data_found`` (the absolute
  path of the data the run read, however it was found, e.g. MNIST through ``$OCEANDL_DATA`` with
  ``data_root`` null in the config; null for synthetic data), ``started`` (UTC),
  ``seconds`` (wall time), ``notes``;
- ``versions`` (oceandl, torch, torchvision, numpy, xarray, segmentation-models-pytorch),
  ``python``, ``platform``, ``git_commit``, ``git_dirty`` (tracked files changed since the
  commit; ``null`` outside a checkout) and ``torch_threads``.

``run.json`` holds the same keys less ``results``.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import shlex
import time
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

from oceandl.errors import InputError, warn
from oceandl.utils import atomic_path, check_output_path, provenance, resolve_device, write_json

__all__ = ["RunContext", "Pipeline", "apply_overrides", "resolve_fast", "run_pipeline", "markdown_table",
           "rerun_command", "absolute_paths", "PATH", "PIPELINES", "RESULTS_KEYS"]

#: the top-level keys of every run's ``results.json`` (see the module docstring)
RESULTS_KEYS = ("pipeline", "results", "command", "started", "config", "data_found", "seed", "device", "seconds", "notes",
                "versions", "python", "platform", "git_commit", "git_dirty", "torch_threads")


@dataclass
class RunContext:
    """What a pipeline gets besides its config: the folder to write into, the device and a logger."""

    folder: Path
    device: str
    progress: bool = True
    log: Callable[[str], None] = print
    notes: list[str] = dataclasses.field(default_factory=list)
    #: the data the pipeline read (set with :meth:`found_data`); None: synthetic
    data_found: str | None = None

    def found_data(self, path: str | Path) -> None:
        """Record where the data the run reads came from, resolved: ``results.json``'s ``data_found``.

        Kept beside the config, not in it: a config whose data were found through
        ``$OCEANDL_DATA`` or ``../shared/data`` keeps ``data_root`` null, so its ``--config`` re-run
        finds the data wherever they are on the machine that runs it.
        """
        self.data_found = str(Path(path).expanduser().resolve())

    def note(self, text: str) -> None:
        """A remark that goes into results.md (e.g. which data were used) and the log."""
        self.notes.append(text)
        self.log(text)


@dataclass(frozen=True)
class Pipeline:
    """A benchmark: a config dataclass, a function ``run(config, ctx) -> {name: metrics}``, the
    metric columns its Markdown table shows and ``fast``, the config values of its seconds-long
    smoke run (``fast=True``; see :func:`resolve_fast`).

    ``timings``: the metrics that measure time, speed or memory (or are chosen from such a
    measurement), which differ between two runs of one config; every other value of a row is
    reproduced by the same config and seed on the same machine and thread count.

    ``legend``: what each column of the table means, with its unit; results.md shows it under the
    table, with the rounding of the numbers."""

    name: str
    config_cls: type
    run: Callable[[Any, RunContext], dict]
    columns: tuple[str, ...]
    description: str = ""
    fast: dict[str, Any] = dataclasses.field(default_factory=dict)
    timings: tuple[str, ...] = ()
    legend: str = ""


#: under every results.md table: its numbers are not the full ones of results.json
ROUNDING = "Numbers rounded to 4 significant digits; results.json holds them in full (NaN and infinities there as null)."


#: metadata of a config field that names a file or folder (``field(default=None, metadata=PATH)``):
#: :func:`run_pipeline` records it absolute (see :func:`absolute_paths`)
PATH = {"path": True}


def absolute_paths(config):
    """``config`` with each path field (metadata :data:`PATH`) absolute and resolved (``~`` expanded),
    against the current folder.

    The run folder recorded ``--data ../data`` as typed: its ``--config results.json`` and its re-run
    command failed from any other folder ("../data: no such folder"), or read another folder of the
    same relative name. Resolved once, at the start, a recorded path names the data that ran
    wherever the run is repeated from (on another machine, ``--set data=...`` points elsewhere).
    """
    changes = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if f.metadata.get("path") and isinstance(value, str) and value.strip():
            changes[f.name] = str(Path(value).expanduser().resolve())
    if all(getattr(config, k) == v for k, v in changes.items()):
        return config
    resolved = getattr(config, _RESOLVED, False)
    config = dataclasses.replace(config, **changes)
    if resolved:
        object.__setattr__(config, _RESOLVED, True)
    return config


def resolve_fast(config, table: dict[str, Any], explicit: typing.AbstractSet[str] = frozenset()):
    """The config a ``fast=True`` run uses: ``config`` with each key of ``table`` at its smoke-run
    value, except the keys the user set: those that differ from the class's defaults, and
    ``explicit`` (keys given with ``--set`` or TOML, even at their default value). A config without
    ``fast`` comes back unchanged. The result is marked as resolved and comes back unchanged from a
    second call: the runner resolves before recording the config, and ``run`` resolves again for
    callers that call it directly without undoing an explicit value equal to a default."""
    if not getattr(config, "fast", False) or not table or getattr(config, _RESOLVED, False):
        return config
    defaults = type(config)()
    kept = set(explicit) | {k for k in table if getattr(config, k) != getattr(defaults, k)}
    config = dataclasses.replace(config, **{k: v for k, v in table.items() if k not in kept})
    object.__setattr__(config, _RESOLVED, True)  # not a field: asdict, == and replace() ignore it
    return config


_RESOLVED = "_oceandl_fast_resolved"


def _coerce(value: str, typ) -> Any:
    origin = typing.get_origin(typ)
    if typ is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(value)
    if origin is tuple:
        inner = typing.get_args(typ)[0] if typing.get_args(typ) else str
        return tuple(_coerce(v.strip(), inner) for v in value.split(",") if v.strip())
    if typ in (int, float, str):
        return typ(value)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        # None first: `str | None` tried str first, so `--set weights=none` (and the "none" that
        # rerun_command writes for None) became the string 'none', a file name that does not exist
        if type(None) in typing.get_args(typ) and value.lower() in ("none", "null"):
            return None
        for t in typing.get_args(typ):
            if t is type(None):
                continue
            try:
                return _coerce(value, t)
            except ValueError:
                pass
        raise ValueError(value)
    return value


def _as_text(v: Any) -> str:
    if isinstance(v, (tuple, list)):
        return ",".join(_as_text(x) for x in v)
    if v is None:
        return "none"
    return str(v).lower() if isinstance(v, bool) else str(v)


def apply_overrides(config, overrides: dict[str, Any] | list[str] | None = None, toml_path: str | None = None):
    """A copy of a frozen dataclass ``config`` with values from a TOML file and ``key=value`` strings."""
    return dataclasses.replace(config, **_changes(config, overrides, toml_path))


def _toml_reader():
    """``tomllib`` (Python >= 3.11), else ``tomli`` where installed. Imported here, not at the top:
    a top-level ``import tomllib`` stopped the whole ``oceandl`` command from starting on Python
    3.10, which ``requires-python`` accepts, although only ``--config`` reads TOML."""
    try:
        import tomllib
    except ModuleNotFoundError:
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise InputError("--config: reading TOML needs Python >= 3.11 (tomllib) or the tomli package; "
                             "give the values with --set key=value instead") from None
    return tomllib


def _read_run_json(path, pipeline: str | None) -> tuple[dict, bool]:
    """The resolved config of a run folder's ``results.json`` or ``run.json`` (or a JSON file of config
    values), and whether the file is such a run record."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read JSON config ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a JSON object of config values or a run folder's results.json")
    if isinstance(data.get("config"), dict) and "pipeline" in data:  # a results.json or run.json
        if pipeline is not None and data["pipeline"] != pipeline:
            raise InputError(f"{path}: a run of benchmark {data['pipeline']!r}, not {pipeline!r}")
        _warn_other_threads(path, data.get("torch_threads"))
        return data["config"], True
    return data, False


def _warn_other_threads(path, threads) -> None:
    """Warn when a run fed back with ``--config`` ran with another torch thread count than this one:
    the same config and seed then give scores that differ in their last digits (the float sums are
    ordered by thread), which read as a failure to reproduce."""
    import torch

    now = torch.get_num_threads()
    if isinstance(threads, int) and not isinstance(threads, bool) and threads != now:
        warn(f"{path}: that run used {threads} torch thread{'s' * (threads != 1)}, this one {now}: its scores "
             f"can differ in the last digits (OMP_NUM_THREADS={threads} repeats it exactly)")


def _changes(config, overrides, toml_path, pipeline: str | None = None) -> dict[str, Any]:
    """The checked ``{key: value}`` that :func:`apply_overrides` sets."""
    hints = typing.get_type_hints(type(config))
    names = {f.name for f in fields(config)}
    changes: dict[str, Any] = {}
    full_record = False
    if toml_path and Path(toml_path).is_dir():
        # a run folder, as the docs call it (`--config RUN`): its record. It was read as a TOML file
        # and failed with "cannot read TOML config ([Errno 21] Is a directory)"
        record = Path(toml_path) / "results.json"
        if not record.is_file():
            raise InputError(f"{toml_path}: a folder without results.json; give a run folder or a "
                             "config file (.toml, or a run's results.json / run.json)")
        toml_path = str(record)
    if toml_path and Path(toml_path).suffix == ".json":
        # The run folder holds its resolved config only as JSON (run.json), which --config, reading
        # TOML only, refused: the recorded config could not be fed back. A .json file is read as
        # JSON now, a run.json's "config" taken (null is None), then checked like TOML values.
        data, record = _read_run_json(toml_path, pipeline)
        # a run's record (results.json, run.json) holds every value, all counted as set, so --fast
        # shrank nothing: a full run's config with --fast ran the full cube, recorded as fast
        full_record = record and data.get("fast") is False
    elif toml_path:
        tomllib = _toml_reader()
        try:
            data = tomllib.loads(Path(toml_path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise InputError(f"{toml_path}: cannot read TOML config ({exc})") from None
    if toml_path:
        for k, v in data.items():
            if k not in names:
                raise InputError(f"{toml_path}: unknown config key {k!r}; keys: {', '.join(sorted(names))}")
            # TOML values were taken as they came, unchecked: size = "abc" failed deep in the run as a
            # TypeError (exit 1), fast = "yes" ran and was recorded as the string "yes". They go
            # through the same coercion and checks as --set now (a list element by element).
            try:
                if isinstance(v, list) and typing.get_origin(hints[k]) is tuple:
                    inner = (typing.get_args(hints[k]) or (str,))[0]
                    v = tuple(_coerce(_as_text(x), inner) for x in v)
                elif isinstance(v, (dict, list)):
                    raise ValueError(v)
                else:
                    v = _coerce(_as_text(v), hints[k])
            except (ValueError, TypeError):
                raise InputError(f"{toml_path}: {k} = {v!r}: not a valid {hints[k]}") from None
            changes[k] = v
    items = overrides.items() if isinstance(overrides, dict) else [
        tuple(s.split("=", 1)) if "=" in s else (s, None) for s in (overrides or [])]
    for k, v in items:
        if v is None:
            raise InputError(f"--set {k}: expected key=value")
        k = k.strip().replace("-", "_")
        if k not in names:
            raise InputError(f"--set {k}: unknown config key; keys: {', '.join(sorted(names))}")
        # Values the CLI already parsed (0.5, (0.3, 0.6), True) go back to text and through the same
        # coercion as strings: a single value for a tuple field becomes a 1-tuple, types are checked.
        text = v if isinstance(v, str) else _as_text(v)
        try:
            v = _coerce(text, hints[k])
        except (ValueError, TypeError):
            raise InputError(f"--set {k}={text}: not a valid {hints[k]}") from None
        changes[k] = v
    if full_record and changes.get("fast") is True:
        raise InputError(f"{toml_path}: the record of a full run (fast = false), whose sizes are all kept: --fast "
                         f"would not shrink them; drop --fast, or give smaller sizes with --set")
    seed = changes.get("seed")
    if isinstance(seed, int) and seed < 0:  # else NumPy's bare "expected non-negative integer", exit 1
        raise InputError(f"seed={seed}: must be a non-negative integer")
    return changes


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else _cell(str(v))


def _cell(text: str) -> str:
    """``text`` as one table cell: a ``|`` (in a row label such as ``climatology:a|b``) split the
    cell, shifting every later column of the row under the wrong header; GFM reads ``\\|`` as ``|``."""
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(results: dict[str, dict], columns: tuple[str, ...]) -> str:
    """A Markdown table: one row per name, one column per metric present in some row."""
    cols = [c for c in columns if any(c in r for r in results.values())]
    lines = ["| name | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, r in results.items():
        lines.append(f"| {_cell(name)} | " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def rerun_command(pipeline: Pipeline, config, device: str, out: str | Path) -> str:
    """The ``oceandl benchmark`` command line that runs ``config`` (a resolved config) again into ``out``.

    Every field that differs from the class's defaults is given with ``--set``, and with ``fast``
    every key of the pipeline's smoke-run table too: a value the user set equal to a default is
    then not replaced by the smoke-run value, and a later change of that table does not change
    what the command runs.
    """
    defaults = type(config)()
    fast = bool(getattr(config, "fast", False))
    args = ["oceandl", "benchmark", pipeline.name] + (["--fast"] if fast else [])
    if hasattr(config, "seed"):
        args += ["--seed", str(config.seed)]
    for f in fields(config):
        if f.name in ("seed", "fast"):
            continue
        value = getattr(config, f.name)
        if value != getattr(defaults, f.name) or (fast and f.name in pipeline.fast):
            args += ["--set", f"{f.name}={_as_text(value)}"]
    args += ["--device", str(device).split(":")[0], "-o", str(out)]
    return shlex.join(args)


def _check_run_folder(out: Path) -> None:
    """Refuse, even with ``overwrite``, an ``out`` that is not a previous run folder: a file, a
    folder with other content (replacing it deleted that content) or the current folder."""
    if not (out.exists() or out.is_symlink()):
        return
    if not out.is_dir():
        raise InputError(f"{out}: is a file, not a run folder; choose another -o")
    if Path.cwd().resolve().is_relative_to(out.resolve()):
        raise InputError(f"{out}: holds the current folder; choose another -o")
    if any(out.iterdir()) and not (out / "run.json").is_file():
        raise InputError(f"{out}: not a run folder (no run.json), so --overwrite does not replace it; "
                         f"choose another -o or remove it yourself")


def run_pipeline(pipeline: Pipeline, out: str | Path, *, config=None, overrides=None, toml_path=None,
                 overwrite: bool = False, device: str = "auto", progress: bool = True,
                 log: Callable[[str], None] = print) -> tuple[Path, dict]:
    """Run a benchmark into the folder ``out``; returns the folder and the results dict."""
    config = config or pipeline.config_cls()
    changes = _changes(config, overrides, toml_path, pipeline.name)
    # the config that runs, recorded as such: a smoke run's sizes, except those the user set
    config = absolute_paths(dataclasses.replace(config, **changes))
    config = resolve_fast(config, pipeline.fast, explicit=set(changes))
    dev = str(resolve_device(device))
    if overwrite:  # without it atomic_path refuses any existing out
        _check_run_folder(Path(out))
    # -o absolute too: the command is pasted from anywhere, and names the folder it wrote
    command = rerun_command(pipeline, config, dev, Path(out).expanduser().resolve())
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    prov = provenance()  # at the start: the code that runs, even if the checkout moves on during a long run
    import torch

    # The thread count changes the float summation order, so the scores (e.g. a neural method's
    # val_rmse in its 4th digit, 1 against 2 threads) and it was not recorded anywhere: a run could
    # not be reproduced bit for bit from its folder.
    prov["torch_threads"] = torch.get_num_threads()
    t0 = time.perf_counter()
    # The documented `-o runs/NAME` failed in a fresh folder ("folder runs does not exist"): the
    # folders above the run folder are made now, after the config is checked, and removed again
    # (those made here, if still empty) when the run fails, so a failed run leaves nothing.
    check_output_path(out, overwrite, parents=True)
    made = [p for p in reversed(Path(out).parents) if not (p.exists() or p.is_symlink())]
    for p in made:
        p.mkdir()
    try:
        return _run_into(pipeline, config, out, overwrite, dev, command, started, prov, t0, progress, log)
    except BaseException:
        for p in reversed(made):
            try:
                p.rmdir()
            except OSError:  # not empty (something else wrote there meanwhile): keep it
                break
        raise


def _run_into(pipeline, config, out, overwrite, dev, command, started, prov, t0, progress, log):
    """run_pipeline's run and its writing of the folder ``out`` (its parent exists)."""
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir()
        ctx = RunContext(folder=tmp, device=dev, progress=progress, log=log)
        results = pipeline.run(config, ctx)
        seconds = time.perf_counter() - t0
        run = {"pipeline": pipeline.name, "command": command, "started": started, "config": asdict(config),
               "data_found": ctx.data_found, "seed": getattr(config, "seed", None), "device": dev, "seconds": seconds, "notes": ctx.notes, **prov}
        # results.json held the rows alone: the numbers said nothing of the config, seed, versions or
        # commit that made them, and `--config results.json` was refused (unknown key 'eof@0.3')
        write_json({"pipeline": pipeline.name, "results": results, **run}, tmp / "results.json")
        write_json(run, tmp / "run.json")
        figures = sorted(p.name for p in tmp.glob("*.png"))
        # the table's columns were not explained anywhere in the run folder (val_std_ratio, test_ece,
        # truth_rmse_days_80_95 reading "nan"), nor its rounding to 4 digits against results.json
        md = [f"# oceandl benchmark: {pipeline.name}", "", pipeline.description, "",
              markdown_table(results, pipeline.columns), ""]
        md += [f"Columns: {pipeline.legend}", ""] if pipeline.legend else []
        md += [ROUNDING, ""]
        md += [f"- {n}" for n in ctx.notes]
        md += ["", "## Run", "", f"- re-run: `{command}`", f"- started: {started}",
               f"- data: {ctx.data_found or 'synthetic'}", f"- seed: {run['seed']}",
               f"- device: {dev}, torch threads: {prov['torch_threads']}", f"- wall time: {seconds:.1f} s",
               f"- git commit: {prov['git_commit']}" + (" (with uncommitted changes)" if prov.get("git_dirty") else ""),
               "- versions: " + ", ".join(f"{k} {v}" for k, v in prov["versions"].items()),
               f"- python {prov['python']} on {prov['platform']}", "", "## Resolved config", "", "```json",
               json.dumps(asdict(config), indent=2, default=str), "```", ""]
        if figures:
            md += ["## Figures", ""] + [f"![{f}]({f})" for f in figures]
        (tmp / "results.md").write_text("\n".join(md) + "\n")
    return Path(out), results


PIPELINES: dict[str, str] = {
    # name -> module defining PIPELINE (imported lazily: each pulls in its own data code)
    "mnist": "oceandl.pipelines.mnist",
    "sst": "oceandl.pipelines.sst",
    "sar": "oceandl.pipelines.sar",
    "plankton": "oceandl.pipelines.plankton",
    "perf": "oceandl.pipelines.perf",
    "scaling": "oceandl.pipelines.scaling",
}
