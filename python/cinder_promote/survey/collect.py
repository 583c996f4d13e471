"""Collect the replication facts of Cinder's volume driver classes, inside the Python that has Cinder.

This file is run as a script by the interpreter where Cinder is installed (`python collect.py ...`):
it uses the standard library only and never imports cinder_promote, so that it runs in any Cinder
venv. It prints one JSON document on stdout (see `main`).

Each fact comes from the class, never from its name:

- imported: the driver module is imported (as Cinder does) and each method is looked up along the
  class's real MRO; the first class that defines it is where it comes from.
- read: when the module does not import (a vendor library missing, a broken dependency) or when
  `--no-import` is given, the same facts come from the source with `ast`: base classes are resolved
  through the module's imports into the files of the package, the MRO is computed by C3 from them.

A method "is implemented" when the class that defines it is not Cinder's `BaseVD`, whose versions
are placeholders that raise NotImplementedError (Cinder's own `BaseVD._is_base_method` rule).

usage: python collect.py [--site DIR] [--no-import] [--no-tree] [--driver dotted.path.Class]...
"""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import json
import os
import sys
import traceback
import warnings
from typing import Any

METHODS = (
    "failover_host",           # failover of a standalone backend
    "failover",                # active-active: each member fails over...
    "failover_completed",      # ...and one completes it
    "failover_replication",    # group (consistency group) replication
    "enable_replication",
    "disable_replication",
    "update_host_replication",  # the startup hook after a promotion
)
BASE_VD = "cinder.volume.driver.BaseVD"
REGISTER = "cinder.interface.volumedriver"
DRIVERS_PACKAGE = "cinder.volume.drivers"
ATTRIBUTES = ("SUPPORTS_ACTIVE_ACTIVE", "CI_WIKI_NAME", "VERSION")


# -- finding files without importing -----------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def module_file(name: str) -> tuple[str, str] | None:
    """(file, sys.path entry) of module `name`, found on sys.path without importing anything."""
    parts = name.split(".")
    for entry in sys.path:
        base = os.path.join(entry or ".", *parts)
        for candidate in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(candidate):
                return candidate, entry or "."
    return None


def is_package(name: str) -> bool:
    found = module_file(name)
    return found is not None and found[0].endswith("__init__.py")


def relative(path: str, entry: str) -> str:
    return os.path.relpath(path, entry).replace(os.sep, "/")


# -- the source, read with ast --------------------------------------------------------------------------


class SourceClass:
    def __init__(self, module: "SourceModule", node: ast.ClassDef, qualname: str) -> None:
        self.module = module
        self.node = node
        self.qualname = qualname
        self.fqn = f"{module.name}.{qualname}"
        self.line = node.lineno
        self.members: dict[str, int] = {}  # method or attribute -> line
        self.values: dict[str, ast.expr] = {}  # class attributes' values, as written
        for item in node.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.members[item.name] = item.lineno
            elif isinstance(item, ast.Assign):
                for target in item.targets:
                    if isinstance(target, ast.Name):
                        self.members[target.id] = item.lineno
                        self.values[target.id] = item.value
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None:
                self.members[item.target.id] = item.lineno
                self.values[item.target.id] = item.value


_UNKNOWN = object()


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _UNKNOWN


class SourceModule:
    def __init__(self, name: str, path: str, entry: str) -> None:
        self.name = name
        self.path = path
        self.file = relative(path, entry)
        self.package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        with open(path, "rb") as f:
            tree = ast.parse(f.read(), filename=path)
        self.classes: dict[str, SourceClass] = {}
        self.imports: dict[str, tuple[str, str | None]] = {}  # local name -> (module, attribute or None)
        self.constants: dict[str, ast.expr] = {}  # module-level NAME = value
        self._walk(tree.body, "")

    def _walk(self, body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                qualname = prefix + node.name
                self.classes[qualname] = SourceClass(self, node, qualname)
                self._walk(node.body, qualname + ".")
            elif prefix:
                continue
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.constants[target.id] = node.value
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.imports[alias.asname] = (alias.name, None)
                    else:  # `import a.b.c` binds `a`
                        top = alias.name.split(".")[0]
                        self.imports[top] = (top, None)
            elif isinstance(node, ast.ImportFrom):
                source = self._absolute(node.module, node.level)
                for alias in node.names:
                    if alias.name != "*":
                        self.imports[alias.asname or alias.name] = (source, alias.name)
            elif isinstance(node, (ast.If, ast.Try)):  # guarded imports and definitions
                self._walk(node.body, prefix)
                for handler in getattr(node, "handlers", []):
                    self._walk(handler.body, prefix)
                self._walk(node.orelse, prefix)
                self._walk(getattr(node, "finalbody", []), prefix)

    def _absolute(self, module: str | None, level: int) -> str:
        if not level:
            return module or ""
        base = self.package.split(".")
        base = base[: len(base) - (level - 1)] if level > 1 else base
        return ".".join(base + ([module] if module else []))


class SourceIndex:
    """Modules parsed on demand, and names resolved through their imports."""

    def __init__(self) -> None:
        self.modules: dict[str, SourceModule | None] = {}

    def module(self, name: str) -> SourceModule | None:
        if name not in self.modules:
            found = module_file(name)
            try:
                self.modules[name] = SourceModule(name, *found) if found else None
            except (OSError, SyntaxError, ValueError):
                self.modules[name] = None
        return self.modules[name]

    def cls(self, fqn: str) -> SourceClass | None:
        module, _, qualname = fqn.rpartition(".")
        while module:
            src = self.module(module)
            if src is not None and qualname in src.classes:
                return src.classes[qualname]
            module, _, head = module.rpartition(".")
            qualname = f"{head}.{qualname}"
        return None

    def resolve(self, module: SourceModule, expr: ast.expr) -> str | None:
        """The dotted name that `expr` stands for in `module` (a class, a module or a function)."""
        if isinstance(expr, ast.Name):
            return self._name(module, expr.id, set())
        if isinstance(expr, ast.Attribute):
            owner = self.resolve(module, expr.value)
            return None if owner is None else self._attribute(owner, expr.attr, set())
        if isinstance(expr, ast.Call):  # a decorator with arguments
            return self.resolve(module, expr.func)
        return None

    def _name(self, module: SourceModule, name: str, seen: set[str]) -> str | None:
        if name in module.classes:
            return f"{module.name}.{name}"
        if name in module.imports:
            source, attribute = module.imports[name]
            return source if attribute is None else self._attribute(source, attribute, seen)
        if hasattr(builtins, name):
            return f"builtins.{name}"
        return None

    def _attribute(self, owner: str, attribute: str, seen: set[str]) -> str | None:
        key = f"{owner}.{attribute}"
        if key in seen:
            return None
        seen.add(key)
        if module_file(key) is not None:
            return key  # a submodule
        src = self.module(owner)
        if src is not None and attribute in src.imports and attribute not in src.classes:
            return self._name(src, attribute, seen)  # re-exported
        return key  # defined there (a class, a function), or an attribute of a class

    def value(self, module: SourceModule, expr: ast.expr, depth: int = 0) -> Any:
        """A literal, or a name of a module-level literal (`VERSION = utils.VERSION`); else unknown."""
        value = _literal(expr)
        if value is not _UNKNOWN or depth > 5 or not isinstance(expr, (ast.Name, ast.Attribute)):
            return value
        if isinstance(expr, ast.Name) and expr.id in module.constants:
            return self.value(module, module.constants[expr.id], depth + 1)
        name = self.resolve(module, expr)
        owner, _, attribute = (name or "").rpartition(".")
        src = self.module(owner) if owner else None
        if src is None or attribute not in src.constants:
            return _UNKNOWN
        return self.value(src, src.constants[attribute], depth + 1)

    def bases(self, cls: SourceClass) -> tuple[list[str], list[str]]:
        """(resolved base class names, bases that could not be resolved, as written)."""
        resolved, unresolved = [], []
        for expr in cls.node.bases:
            name = self.resolve(cls.module, expr)
            if name == "builtins.object":
                continue
            if name is not None and self.cls(name) is not None:
                resolved.append(self.cls(name).fqn)  # type: ignore[union-attr]
            else:
                unresolved.append(ast.unparse(expr))
        return resolved, unresolved

    def mro(self, cls: SourceClass, seen: frozenset[str] = frozenset()) -> tuple[list[SourceClass], list[str]]:
        """C3 linearization over the resolved bases, and every base (of any ancestor) left unresolved."""
        if cls.fqn in seen:
            raise ValueError(f"inheritance cycle at {cls.fqn}")
        resolved, unresolved = self.bases(cls)
        seqs: list[list[SourceClass]] = []
        for base in resolved:
            base_mro, base_unresolved = self.mro(self.cls(base), seen | {cls.fqn})  # type: ignore[arg-type]
            seqs.append(base_mro)
            unresolved += base_unresolved
        bases = [self.cls(b) for b in resolved]
        seqs.append([b for b in bases if b is not None])
        out = [cls]
        while any(seqs):
            seqs = [s for s in seqs if s]
            for seq in seqs:
                head = seq[0]
                if not any(head in s[1:] for s in seqs):
                    break
            else:
                raise ValueError(f"no consistent method resolution order for {cls.fqn}")
            out.append(head)
            seqs = [s[1:] if s[0] is head else s for s in seqs]
        return out, list(dict.fromkeys(unresolved))


# -- the facts of one class ---------------------------------------------------------------------------------


def facts_from_source(index: SourceIndex, cls: SourceClass, import_error: str | None) -> dict[str, Any]:
    mro, unresolved = index.mro(cls)
    methods: dict[str, Any] = {}
    for name in METHODS:
        owner = next((c for c in mro if name in c.members), None)
        methods[name] = _method(owner.fqn, owner.module.file, owner.members[name]) if owner else None
    attributes: dict[str, Any] = {}
    for name in ATTRIBUTES:
        owner = next((c for c in mro if name in c.members), None)
        value = index.value(owner.module, owner.values[name]) if owner and name in owner.values else None
        attributes[name] = None if value is _UNKNOWN else value
    registered = any(index.resolve(cls.module, d) == REGISTER for d in cls.node.decorator_list)
    return _facts(cls.fqn, cls.module.name, cls.qualname, cls.module.file, cls.line, "read", import_error,
                  registered, [c.fqn for c in mro], unresolved, methods, attributes)


def facts_from_class(index: SourceIndex, cls: type, registered: bool) -> dict[str, Any]:
    mro = [f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__ if c is not object]
    methods: dict[str, Any] = {}
    for name in METHODS:
        owner = next((c for c in cls.__mro__ if name in vars(c)), None)
        methods[name] = None if owner is None else _located(index, owner, name)
    attributes = {name: _plain(getattr(cls, name, None)) for name in ATTRIBUTES}
    src = index.cls(f"{cls.__module__}.{cls.__qualname__}")
    file = src.module.file if src else _file_of(cls)
    line = src.line if src else None
    return _facts(f"{cls.__module__}.{cls.__qualname__}", cls.__module__, cls.__qualname__, file, line, "imported",
                  None, registered, mro, [], methods, attributes)


def _located(index: SourceIndex, owner: type, name: str) -> dict[str, Any]:
    fqn = f"{owner.__module__}.{owner.__qualname__}"
    src = index.cls(fqn)
    if src is not None and name in src.members:
        return _method(fqn, src.module.file, src.members[name])
    return _method(fqn, _file_of(owner), None)  # set at run time, not in the class body


def _file_of(cls: type) -> str | None:
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    found = module_file(cls.__module__)
    return relative(path, found[1]) if path and found else path


def _plain(value: Any) -> Any:
    return value if isinstance(value, (bool, int, float, str, type(None))) else repr(value)


def _method(defined_in: str, file: str | None, line: int | None) -> dict[str, Any]:
    return {"defined_in": defined_in, "file": file, "line": line, "implemented": defined_in != BASE_VD}


def _facts(driver: str, module: str, name: str, file: str | None, line: int | None, how: str,
           import_error: str | None, registered: bool, mro: list[str], unresolved: list[str],
           methods: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        "driver": driver, "module": module, "class": name, "file": file, "line": line, "how": how,
        "import_error": import_error, "registered": registered, "is_volume_driver": BASE_VD in mro,
        "mro": mro, "unresolved_bases": unresolved, "methods": methods,
        "supports_active_active": attributes["SUPPORTS_ACTIVE_ACTIVE"],
        "ci_wiki_name": attributes["CI_WIKI_NAME"], "version": attributes["VERSION"],
    }


# -- importing --------------------------------------------------------------------------------------------


def _import(name: str) -> tuple[Any, str | None]:
    """The module, or None and why it did not import (anything it raised, SystemExit included)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name), None
    except BaseException as exc:  # noqa: BLE001 - a driver module may raise anything at import
        if isinstance(exc, KeyboardInterrupt):
            raise
        return None, "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]


def _prepare_cinder() -> str | None:
    """What cinder-volume does before loading a driver: register Cinder's versioned objects."""
    objects, error = _import("cinder.objects")
    if objects is None:
        return error
    objects.register_all()
    return None


def tree_modules() -> list[str]:
    """Every module of cinder/volume/drivers, in a stable order."""
    found = module_file(DRIVERS_PACKAGE)
    if found is None:
        return []
    root = os.path.dirname(found[0])
    names = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for file in sorted(files):
            if file.endswith(".py"):
                parts = relative(os.path.join(folder, file), found[1])[:-3].split("/")
                names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def survey_tree(index: SourceIndex, use_import: bool) -> list[dict[str, Any]]:
    """Every driver class of Cinder's tree: the classes Cinder registers as volume drivers
    (@interface.volumedriver) and the volume driver classes no other driver class extends."""
    modules = tree_modules()
    errors: dict[str, str | None] = {}
    live: dict[str, type] = {}
    registered: set[str] = set()
    if use_import:
        for name in modules:
            errors[name] = _import(name)[1]
        interface = sys.modules.get("cinder.interface")
        registered = {f"{c.__module__}.{c.__qualname__}" for c in getattr(interface, "_volume_register", [])}
        base = _base_vd()
        stack: list[type] = list(base.__subclasses__()) if base else []
        while stack:
            cls = stack.pop()
            if cls.__module__.startswith(DRIVERS_PACKAGE + ".") and not errors.get(cls.__module__):
                live[f"{cls.__module__}.{cls.__qualname__}"] = cls
            stack.extend(cls.__subclasses__())
    candidates: dict[str, dict[str, Any]] = {}
    for fqn, cls in live.items():
        candidates[fqn] = facts_from_class(index, cls, fqn in registered)
    for name in modules:
        if use_import and not errors.get(name):
            continue
        src = index.module(name)
        for source_cls in (src.classes.values() if src else []):
            try:
                facts = facts_from_source(index, source_cls, errors.get(name))
            except ValueError:
                continue
            if facts["is_volume_driver"]:
                candidates[facts["driver"]] = facts
    extended = {base for facts in candidates.values() for base in facts["mro"][1:]}
    return [facts for fqn, facts in sorted(candidates.items())
            if facts["is_volume_driver"] and fqn != BASE_VD and (facts["registered"] or fqn not in extended)]


def _base_vd() -> type | None:
    module = sys.modules.get("cinder.volume.driver")
    return getattr(module, "BaseVD", None)


def survey_one(index: SourceIndex, path: str, use_import: bool) -> dict[str, Any]:
    """One class named as cinder.conf's volume_driver names it (module.Class)."""
    module, _, qualname = path.rpartition(".")
    error = None
    if use_import and module:
        imported, error = _import(module)
        if imported is not None:
            cls: Any = imported
            for part in qualname.split("."):
                cls = getattr(cls, part, None)
            if isinstance(cls, type):
                interface = sys.modules.get("cinder.interface")
                return facts_from_class(index, cls, cls in getattr(interface, "_volume_register", []))
            error = f"{module} has no class {qualname}"
    src = index.cls(path) if module else None
    if src is None:
        reason = error or ("not found" if module_file(module) else f"no module {module} on this Python's path")
        return {"driver": path, "error": f"cannot survey {path}: {reason}"}
    try:
        return facts_from_source(index, src, error)
    except ValueError as exc:
        return {"driver": path, "error": f"cannot survey {path}: {exc}"}


def cinder_info() -> dict[str, Any]:
    found = module_file("cinder")
    if found is None:
        return {"dir": None, "version": None, "hook_in_base": False}
    cinder_dir = os.path.dirname(found[0])
    version = None
    parent = os.path.dirname(cinder_dir)
    for entry in sorted(os.listdir(parent)):
        if entry.startswith("cinder-") and entry.endswith(".dist-info"):
            try:
                with open(os.path.join(parent, entry, "METADATA"), errors="replace") as f:
                    version = next((line.split(":", 1)[1].strip() for line in f if line.startswith("Version:")), None)
            except OSError:
                pass
    base = SourceIndex().cls(BASE_VD)
    return {"dir": cinder_dir, "version": version,
            "hook_in_base": bool(base and "update_host_replication" in base.members)}


def main(argv: list[str]) -> int:
    # Run as a script, Python put this folder first on sys.path: its modules must not shadow anyone's.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    use_import, tree, drivers = True, True, []
    args = iter(argv)
    for arg in args:
        if arg == "--site":
            sys.path.insert(0, next(args))
        elif arg == "--no-import":
            use_import = False
        elif arg == "--no-tree":
            tree = False
        elif arg == "--driver":
            drivers.append(next(args))
        else:
            print(f"collect.py: unknown argument {arg!r}", file=sys.stderr)
            return 2
    # Driver modules may print or log at import: keep our stdout for the JSON alone.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    info = cinder_info()
    setup_error = _prepare_cinder() if use_import and info["dir"] else None
    index = SourceIndex()
    result = {
        "cinder": info, "python": sys.executable, "imported": use_import, "setup_error": setup_error,
        "tree": survey_tree(index, use_import) if tree and info["dir"] else [],
        "drivers": [survey_one(index, path, use_import) for path in drivers],
    }
    json.dump(result, out)
    out.write("\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
