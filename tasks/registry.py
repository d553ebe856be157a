"""One registry mechanism for every kind of component: methods, backbones, datasets, FID feature
extractors and few-shot episode builders (timm's ``register_model``/``list_models`` shape, OML's one
registry per kind).

A :class:`Registry` maps names to entries of one kind. ``register`` adds an entry where it is defined
(also as a decorator), ``get`` looks one up and refuses an unknown name with the closest known one,
``names``/iteration list them, ``describe`` gives an entry's declared options (hyperparameters with
their defaults and search ranges, a dataset builder's options, a backbone's feature size and
preprocessing). The package's own entries and a plugin's go through the same ``register``.

Plugins: a module or file registers its components by being imported. While one loads
(:func:`registering_as`), every registration is attributed to it, a name that another origin (the
package, another plugin) already holds is refused, and if the plugin fails halfway its registrations
are undone. Installed packages register through the entry point group ``oodml.plugins``
(:func:`load_entry_points`, once per process; also on the first unknown name a registry is asked for).

Plain Python: importing this module imports no torch, so ``study`` can use its name checks cheaply.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

T = TypeVar("T")

BUILTIN = "oodml"  # the origin of the package's own entries
ENTRY_POINT_GROUP = "oodml.plugins"
# The modules whose import registers the built-in entries (imported before any plugin, so a plugin that
# imports them first cannot have the built-ins attributed to itself); none imports torch.
BUILTIN_MODULES = (
    "tasks.methods",
    "tasks.models",
    "tasks.data.registry",
    "tasks.splits.extractors",
    "tasks.splits.episodes",
)
REFERENCE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")  # "package.module:name"


class RegistryError(ValueError):
    """A component cannot be registered: its name is taken, or it lacks its declaration."""


class PluginError(ValueError):
    """A plugin cannot be loaded; the message names it and what to do."""


def suggestion(name: str, choices: Iterable[str], n: int = 1) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` (up to ``n`` of them), or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f"; did you mean {', '.join(map(repr, close))}?" if close else ""


def unknown_name(name: str, choices: Iterable[str], *, what: str = "name", listed: str = "allowed") -> str:
    """``"unknown <what> 'x'; did you mean 'y'? (<listed>: a, b, c)"``: the one did-you-mean message."""
    choices = sorted(choices)
    return f"unknown {what} {name!r}{suggestion(name, choices)} ({listed}: {', '.join(choices)})"


class _Loading(threading.local):
    def __init__(self) -> None:
        self.origins: list[str] = []  # plugins being loaded, innermost last
        self.added: list[list[tuple[Registry, str, tuple | None]]] = []  # per plugin: what to undo


_loading = _Loading()


def current_origin() -> str:
    """Who registers now: the plugin being loaded, else the package itself."""
    return _loading.origins[-1] if _loading.origins else BUILTIN


def import_builtins() -> None:
    """Import every module that registers built-in entries (cheap once imported)."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


@contextmanager
def registering_as(origin: str) -> Iterator[list[tuple[Registry, str, tuple | None]]]:
    """Attribute every registration inside the block to ``origin`` (a plugin); yields the list of
    ``(registry, name, replaced entry)`` it registers. If the block raises, the registrations it made are
    removed again (and entries they replaced restored)."""
    import_builtins()
    _loading.origins.append(origin)
    _loading.added.append([])
    try:
        yield _loading.added[-1]
    except BaseException:
        for registry, name, previous in reversed(_loading.added[-1]):
            registry._restore(name, previous)
        raise
    finally:
        _loading.origins.pop()
        _loading.added.pop()


class _Missing:
    pass


_MISSING = _Missing()


class Registry(Mapping[str, T], Generic[T]):
    """Named entries of one kind (``kind``: "method", "backbone", ...).

    ``entry_type``: what an entry must be (a :class:`~tasks.methods.MethodSpec`, a ``BackboneSpec``);
    ``check(name, entry)`` raises :class:`RegistryError` when an entry lacks part of its declaration;
    ``describe(entry)`` gives its declared options as plain data; ``name_of(entry)`` its name when
    ``register`` is not given one (default: an entry's ``name`` attribute, else its ``__name__``);
    ``error`` is the exception ``get`` raises for an unknown name (a ``ValueError``).
    It is a read-only mapping, so ``registry[name]``, ``name in registry`` and ``items()`` work as on
    the plain dicts it replaces.
    """

    def __init__(
        self,
        kind: str,
        entry_type: type | None = None,
        *,
        plural: str | None = None,
        check: Callable[[str, T], None] | None = None,
        describe: Callable[[T], dict[str, Any]] | None = None,
        name_of: Callable[[T], str] | None = None,
        error: type[Exception] = ValueError,
    ) -> None:
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.entry_type = entry_type
        self._check = check
        self._describe = describe
        self._name_of = name_of
        self._error = error
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str] = {}

    # --- registering -------------------------------------------------------------------------------

    def register(self, entry: T | None = None, /, *, name: str | None = None) -> Any:
        """Register ``entry`` (under ``name``, default its own name) and return it; without an entry, a
        decorator that registers what it decorates (``@REGISTRY.register(name="x")``)."""
        if entry is None:
            return lambda decorated: self.register(decorated, name=name)
        name = name or self._entry_name(entry)
        if self.entry_type is not None and not isinstance(entry, self.entry_type):
            raise RegistryError(
                f"{self.kind} {name!r} is registered as {entry!r}, which is not a {self.entry_type.__name__}: "
                f"register a {self.entry_type.__name__} that declares it"
            )
        if self._check is not None:
            self._check(name, entry)
        origin = current_origin()
        held = self._origins.get(name)
        if held is not None and held != origin:
            by = "built in" if held == BUILTIN else f"registered by {held}"
            raise RegistryError(f"{self.kind} {name!r} is already {by}: give this one another name")
        previous = (self._entries[name], held) if held is not None else None
        self._entries[name] = entry
        self._origins[name] = origin
        if _loading.added:
            _loading.added[-1].append((self, name, previous))
        return entry

    def _entry_name(self, entry: T) -> str:
        if self._name_of is not None:
            return self._name_of(entry)
        name = getattr(entry, "name", None) or getattr(entry, "__name__", None)
        if not isinstance(name, str):
            raise RegistryError(f"a {self.kind} needs a name: register({entry!r}, name=...)")
        return name

    def _restore(self, name: str, previous: tuple | None) -> None:
        if previous is None:
            self._entries.pop(name, None)
            self._origins.pop(name, None)
        else:
            self._entries[name], self._origins[name] = previous

    # --- looking up --------------------------------------------------------------------------------

    def get(self, name: str, default: Any = _MISSING) -> T:
        """The entry ``name``. Unknown: ``default`` if given, else the registry's error naming the
        closest known name (after loading the installed plugins, which may register it)."""
        if name not in self._entries:
            load_entry_points()
        if name in self._entries:
            return self._entries[name]
        if default is not _MISSING:
            return default
        raise self._error(unknown_name(name, self._entries, what=self.kind, listed="known"))

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        """Every registered name, in registration order (built-ins first)."""
        return list(self._entries)

    def origin(self, name: str) -> str:
        """``"oodml"`` for a built-in entry, else the plugin that registered it."""
        self.get(name)
        return self._origins[name]

    def describe(self, name: str) -> dict[str, Any]:
        """The entry's declared options as plain data (JSON-ready), with its name and origin."""
        entry = self.get(name)
        described = self._describe(entry) if self._describe is not None else {"description": doc_line(entry)}
        return {"name": name, "origin": self._origins[name], **described}

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


def doc_line(obj: Any) -> str:
    """The first paragraph of ``obj``'s docstring, on one line ("" without one)."""
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split())


# --- implementations named by reference ----------------------------------------------------------------


def resolve_reference(owner: str, reference: str, role: str = "builder") -> Any:
    """The callable ``reference`` (``"package.module:name"``) names, ``owner``'s ``role`` (``"method 'x'"``,
    ``"builder"``); a :class:`RegistryError` saying which when it cannot be imported or is not callable."""
    if not REFERENCE.fullmatch(reference):
        raise RegistryError(f"{owner}: its {role} reference {reference!r} is not 'package.module:name'")
    module, attribute = reference.split(":")
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise RegistryError(f"{owner}: its {role} {reference!r} cannot be imported: {error}") from error
    if not callable(found):
        raise RegistryError(f"{owner}: its {role} {reference!r} is not callable: {found!r}")
    return found


class LazyReference:
    """A callable named by reference (``"package.module:name"``): imported, and checked (``check``), once,
    on first use (a call, or :meth:`resolve`). A registry's built-in entries name their implementations
    so, and are read, listed and checked without importing them (or torch).

    ``signature`` and ``doc``, when declared, are what :func:`inspect.signature` and :func:`doc_line` read
    without importing; on import the real signature must match the declared one (names, kinds and
    defaults). Without them, asking for the signature imports the callable.
    """

    def __init__(
        self,
        owner: str,
        reference: str,
        *,
        role: str = "builder",
        check: Callable[[Callable[..., Any]], None] | None = None,
        signature: inspect.Signature | None = None,
        doc: str | None = None,
    ) -> None:
        if not isinstance(reference, str) or not REFERENCE.fullmatch(reference):
            raise RegistryError(
                f"{owner}: its {role} {reference!r} is neither a callable nor a reference 'package.module:name'"
            )
        self.owner, self.reference, self.role = owner, reference, role
        self._check, self._signature = check, signature
        self.__name__ = reference.rpartition(":")[2]
        if doc is not None:
            self.__doc__ = doc
        self.resolved: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        """The callable itself, imported and checked on the first call."""
        if self.resolved is None:
            found = resolve_reference(self.owner, self.reference, self.role)
            if self._signature is not None and _shape(inspect.signature(found)) != _shape(self._signature):
                raise RegistryError(
                    f"{self.owner}: its {self.role} {self.reference!r} takes {inspect.signature(found)}, "
                    f"but its declaration says {self._signature}: make them agree"
                )
            if self._check is not None:
                self._check(found)
            self.resolved = found
        return self.resolved

    @property
    def __signature__(self) -> inspect.Signature:
        return self._signature if self._signature is not None else inspect.signature(self.resolve())

    def __call__(self, *arguments: Any, **keywords: Any) -> Any:
        return self.resolve()(*arguments, **keywords)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reference!r})"


def _shape(signature: inspect.Signature) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def keyword_signature(first: str, options: Mapping[str, Any]) -> inspect.Signature:
    """``(first, option=default, ...)``: a declared builder's signature (:class:`LazyReference`), each
    option taken by position or keyword with its default."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature(
        [inspect.Parameter(first, kind)] + [inspect.Parameter(n, kind, default=d) for n, d in options.items()]
    )


# --- installed plugins (entry points) -----------------------------------------------------------------

_entry_points_loaded = False
_entry_points_lock = threading.Lock()


def load_entry_points(group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Import every installed plugin of ``group`` once per process; returns the ones loaded now.

    An entry point names a module (``my_oodml = "my_pkg.oodml"``), whose import registers its components,
    or a function to call (``"my_pkg.oodml:register"``). A failing one raises :class:`PluginError`
    naming its distribution."""
    global _entry_points_loaded
    if group == ENTRY_POINT_GROUP and _entry_points_loaded:
        return []
    from importlib.metadata import entry_points

    with _entry_points_lock:
        if group == ENTRY_POINT_GROUP and _entry_points_loaded:
            return []
        if group == ENTRY_POINT_GROUP:
            _entry_points_loaded = True
        loaded = []
        for point in entry_points(group=group):
            dist = getattr(point.dist, "name", None) or "an installed package"
            origin = f"entry point {point.name} = {point.value} ({dist})"
            try:
                with registering_as(origin):
                    target = point.load()
                    if callable(target) and not inspect.ismodule(target):
                        target()
            except Exception as err:
                raise PluginError(
                    f"{origin}: loading the plugin failed: {type(err).__name__}: {err}; fix or uninstall {dist}"
                ) from err
            loaded.append(origin)
        return loaded
