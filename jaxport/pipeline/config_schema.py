"""The schema of a configuration tree: each dataclass field declares its help text (with units), its
command-line flag and where it acts; the CLI, ``--print-config`` and the flag-name map are read
from here.

A field is declared once with :func:`setting`::

    learning_rate: float = setting(3e-4, help="Peak AdamW learning rate (per step).")

and then

* :func:`setting_specs` lists it as a :class:`SettingSpec` (dotted name, flag, type, help, parser),
  from which ``jaxport train`` builds its option;
* :func:`inactive_reason` says why it does not act in a resolved configuration (e.g. a universe
  setting under ``rl.scope = "pair"``), so the CLI can refuse it;
* :func:`to_toml` writes it (``None`` values are left out: they are the defaults).

Stdlib only, so ``jaxport --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Callable, Optional

#: ``acts(config) -> None`` when the setting acts in ``config``, else the reason it does not.
ActsFn = Callable[[Any], Optional[str]]

#: How a flag's text becomes the field value: ``symbols`` "aapl, msft" -> ["AAPL", "MSFT"];
#: ``names`` "Close,open" -> ["close", "open"]; ``floats`` "0.7,0.15" -> [0.7, 0.15]; ``pairs``
#: (repeatable) "AAPL,AMZN" -> [["AAPL", "AMZN"]].
PARSERS = ("symbols", "names", "floats", "pairs")


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    flag: str | tuple[str, ...] | None = None,
    factory: Callable[[], Any] | None = None,
    parse: str | None = None,
    acts: ActsFn | None = None,
    cli: bool = True,
) -> Any:
    """A dataclass field with its CLI metadata.

    ``flag``: the public flag (or flags: the first is the name, the rest aliases); default
    ``--<section>-<name>`` (``--<name>`` at the top level) with ``_`` -> ``-``. ``parse``: one of
    :data:`PARSERS` for list-valued fields. ``acts``: see :data:`ActsFn`. ``cli=False``: settable
    in the TOML file only (e.g. tables).
    """
    if parse is not None and parse not in PARSERS:
        raise ValueError(f"parse {parse!r}: expected one of {PARSERS}")
    metadata = {"help": help, "flag": flag, "parse": parse, "acts": acts, "cli": cli}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class SettingSpec:
    """One CLI-settable field of the tree."""

    dotted: str  # "rl.learning_rate"; top-level fields have no dot
    flags: tuple[str, ...]  # ("--rl-learning-rate",): the first is the public name
    type: type  # int | float | str | bool (the element type for parsed lists)
    help: str
    parse: str | None
    acts: ActsFn | None

    @property
    def flag(self) -> str:
        return self.flags[0]

    @property
    def param(self) -> str:
        """The Python identifier of the option (``rl__learning_rate``)."""
        return self.dotted.replace(".", "__")


def _scalar_type(hint: Any) -> type:
    """``int`` for ``int``, ``int | None``; ``str`` for ``list[str]`` etc."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return _scalar_type(args[0])
    if args and origin is not None:  # Optional / Union
        return _scalar_type(args[0])
    return hint


def _default_flag(section: str, name: str) -> str:
    stem = f"{section}_{name}" if section else name
    return "--" + stem.replace("_", "-")


def setting_specs(root: type) -> list[SettingSpec]:
    """Every CLI-settable field of the dataclass tree ``root`` (top-level fields first, then each
    dataclass-typed section in declaration order)."""
    specs: list[SettingSpec] = []

    def walk(cls: type, section: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            if dataclasses.is_dataclass(hint):
                walk(hint, f.name)
                continue
            meta = f.metadata
            if "help" not in meta:
                raise TypeError(f"{cls.__name__}.{f.name}: declare it with setting(help=...)")
            if not meta["cli"]:
                continue
            flag = meta["flag"] or _default_flag(section, f.name)
            flags = (flag,) if isinstance(flag, str) else tuple(flag)
            dotted = f"{section}.{f.name}" if section else f.name
            specs.append(
                SettingSpec(
                    dotted, flags, _scalar_type(hint), meta["help"], meta["parse"], meta["acts"]
                )
            )

    walk(root, "")
    return specs


def get_dotted(config: Any, dotted: str) -> Any:
    """``config.rl.learning_rate`` for ``"rl.learning_rate"``."""
    value = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def inactive_reason(config: Any, spec: SettingSpec) -> str | None:
    """Why ``spec`` does not act in the resolved ``config`` (``None``: it acts)."""
    return None if spec.acts is None else spec.acts(config)


def parse_flag_value(spec: SettingSpec, value: Any) -> Any:
    """The field value of a flag's raw ``value`` (see :data:`PARSERS`); raises ``ValueError``."""
    if spec.parse is None:
        return value
    if spec.parse == "pairs":
        pairs = [[s.strip().upper() for s in v.split(",") if s.strip()] for v in value]
        for v, pair in zip(value, pairs):
            if len(pair) < 2:
                raise ValueError(
                    f"{v!r}: expected two or more comma-separated symbols, e.g. AAPL,AMZN"
                )
        return pairs
    items = [s.strip() for s in str(value).split(",") if s.strip()]
    if spec.parse == "symbols":
        return [s.upper() for s in items] or None
    if spec.parse == "names":
        return [s.lower() for s in items]
    try:
        return [float(s) for s in items]
    except ValueError:
        raise ValueError(f"{value!r}: expected comma-separated numbers") from None


def format_default(value: Any) -> str:
    """A field value as ``--help`` shows it (lists comma-separated, like the flag takes them)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return (
            " ".join(format_default(v) for v in value)
            if value and isinstance(value[0], (list, tuple))
            else ",".join(str(v) for v in value)
        )
    return str(value)


# ---------------------------------------------------------------------------- TOML
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


def to_toml(tree: dict[str, Any]) -> str:
    """``tree`` (``dataclasses.asdict`` of the config) as TOML: scalars and lists first, then one
    table per nested dict (``[rl]``, ``[rl.grid]``). ``None`` values are left out."""
    lines: list[str] = []

    def table(values: dict[str, Any], prefix: str) -> None:
        nested = {k: v for k, v in values.items() if isinstance(v, dict)}
        if prefix and (values.keys() - nested.keys() or not nested):
            lines.append(f"\n[{prefix}]")
        for key, value in values.items():
            if value is not None and key not in nested:
                lines.append(f"{key} = {_toml_value(value)}")
        for key, value in nested.items():
            table(value, f"{prefix}.{key}" if prefix else key)

    table(tree, "")
    return "\n".join(lines).lstrip("\n") + "\n"
