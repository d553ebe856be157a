"""Plugins: a study's own components (methods, backbones, datasets, extractors), registered on import.

A spec's ``plugins:`` lists importable modules (``my_lab.losses``) and ``.py`` files (a relative path is
resolved against the spec file's folder, and saved absolute); installed packages register through the
entry point group ``oodml.plugins`` (``tasks.registry.load_entry_points``). A plugin registers its
components with the package's own functions (``tasks.methods.register_method``,
``tasks.models.register_backbone``, ``tasks.data.register_dataset``; docs/plugins.md).

Where they load: in the driver before the spec is validated (so the spec's names resolve) and on every
Ray worker before a trial runs. A file plugin travels with the trials: the driver reads its source and
ships it with them (Tune's object store), and the worker executes that source, so the file need not exist
on other nodes (a file plugin is one module: anything it imports must be importable there). A module
plugin is imported by name, so it must be importable on every node: installed there, or in the job's
runtime environment (``ray job submit --working-dir .``, ``py_modules``).

A plugin that fails to import, registers a name another origin holds (a built-in, another plugin),
registers a component without its declaration (a method without a ``MethodSpec``), or registers
nothing is refused with :class:`~tasks.registry.PluginError`, whatever it registered undone.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import traceback
import types
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tasks.registry import PluginError, RegistryError, load_entry_points, registering_as

__all__ = ["PluginError", "PluginSource", "is_file", "load", "load_plugins", "read", "resolve"]


@dataclass(frozen=True)
class PluginSource:
    """A plugin as trials carry it: ``name`` is the spec's entry (a module name, or a file's absolute
    path); ``source`` a file's text (None: a module, imported by name)."""

    name: str
    source: str | None = None

    @property
    def digest(self) -> str:
        return hashlib.sha256((self.source if self.source is not None else self.name).encode()).hexdigest()


def is_file(entry: str) -> bool:
    """A ``.py`` file (or any path), rather than a dotted module name."""
    return entry.endswith(".py") or "/" in entry or "\\" in entry


def resolve(entry: str, base: Path | None = None) -> str:
    """A file entry made absolute (relative to ``base``, default the working directory); a module as is."""
    if not is_file(entry):
        return entry
    path = Path(entry).expanduser()
    return str((path if path.is_absolute() else (base or Path.cwd()) / path).resolve())


def read(entries: Iterable[str]) -> tuple[PluginSource, ...]:
    """The plugins of a spec (absolute paths) with the sources of its files, as trials carry them."""
    plugins = []
    for entry in entries:
        if not is_file(entry):
            plugins.append(PluginSource(entry))
            continue
        try:
            plugins.append(PluginSource(entry, Path(entry).read_text()))
        except (OSError, UnicodeDecodeError) as err:
            raise PluginError(
                f"plugin file {entry} cannot be read ({type(err).__name__}: {err}): give the path of a .py file "
                "(a relative path is taken from the spec file's folder)"
            ) from None
    return tuple(plugins)


_loaded: dict[str, str] = {}  # plugin name -> digest of what this process executed


def _module_name(path: str) -> str:
    stem = "".join(c if c.isalnum() else "_" for c in Path(path).stem)
    return f"oodml_plugin_{stem}_{hashlib.sha256(path.encode()).hexdigest()[:10]}"


def _execute(plugin: PluginSource) -> None:
    """Run a file plugin's source as a module named after its path (no bytecode written next to it)."""
    module = types.ModuleType(_module_name(plugin.name))
    module.__file__ = plugin.name
    sys.modules[module.__name__] = module  # dataclasses and pickle look their module up here
    try:
        exec(compile(plugin.source, plugin.name, "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(module.__name__, None)
        raise


def _where(err: BaseException, plugin: PluginSource) -> str:
    """`` (line N)``: where in the plugin file the error came from, when it did."""
    if isinstance(err, SyntaxError) and err.filename == plugin.name and err.lineno:
        return f" (line {err.lineno})"
    lines = [f.lineno for f in traceback.extract_tb(err.__traceback__) if f.filename == plugin.name]
    return f" (line {lines[-1]})" if lines else ""


def _load_one(plugin: PluginSource) -> None:
    if _loaded.get(plugin.name) == plugin.digest:
        return
    what = f"plugin {'file ' if plugin.source is not None else ''}{plugin.name}"
    fresh = plugin.source is not None or plugin.name not in sys.modules
    try:
        with registering_as(what) as added:
            if plugin.source is not None:
                _execute(plugin)
            else:
                importlib.import_module(plugin.name)
            if fresh and not added:
                raise RegistryError(
                    "it registers no component: call register_method(MethodSpec(...)), register_backbone(...) "
                    "or register_dataset(...) at import (docs/plugins.md)"
                )
    except RegistryError as err:
        raise PluginError(f"{what}: {err}") from None
    except ModuleNotFoundError as err:
        if plugin.source is None and err.name == plugin.name:
            raise PluginError(
                f"{what}: no such module: install it, or name a .py file (a path ending in .py)"
            ) from None
        raise PluginError(
            f"{what}: importing it failed: {type(err).__name__}: {err}{_where(err, plugin)}; install what it "
            "imports, or fix the plugin"
        ) from None
    except Exception as err:
        raise PluginError(
            f"{what}: importing it failed: {type(err).__name__}: {err}{_where(err, plugin)}; fix the plugin, "
            "or remove it from plugins"
        ) from None
    _loaded[plugin.name] = plugin.digest


def load(plugins: Iterable[PluginSource]) -> None:
    """Load the installed plugins (once) and ``plugins``, each once per process (a file again if its
    source changed): what every Ray worker does before a trial runs."""
    load_entry_points()
    for plugin in plugins:
        _load_one(plugin)


def load_plugins(entries: Iterable[str], base: Path | None = None) -> list[str]:
    """Resolve a spec's ``plugins`` (relative files against ``base``), load them and the installed ones;
    returns the resolved entries. Raises :class:`PluginError` naming the plugin and what to do."""
    resolved = [resolve(entry, base) for entry in entries]
    load(read(resolved))
    return resolved
