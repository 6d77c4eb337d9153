"""Parts by name: every part is built from ``{"name": ..., **kwargs}`` and saved the same way.

A *part* is an ``nn.Module`` subclass of :class:`Part`. Defining one with ``kind`` and ``name``
registers it; its constructor arguments are recorded as it is built, so :meth:`Part.spec` returns
what :func:`build` needs to rebuild it. Nothing is pickled: a part whose arguments are not plain
JSON values cannot be saved, and saving says so.
"""

from __future__ import annotations

import functools
import inspect
import json
from typing import Any, ClassVar

from torch import nn

from .errors import AekitError

KINDS = (
    "encoder", "decoder", "latent", "likelihood", "penalty", "corruption",
    "sequence_encoder", "sequence_code", "sequence_decoder", "sequence_corruption",
)  # fmt: skip
_REGISTRY: dict[str, dict[str, type[Part]]] = {kind: {} for kind in KINDS}


class Part(nn.Module):
    """Base class of every registered part (encoders, latents, likelihoods, penalties, ...).

    Subclasses declare ``kind`` (one of :data:`KINDS`) and ``name`` (unique within the kind).
    A class may register for several kinds with ``kinds = ("encoder", "decoder")``.
    """

    kind: ClassVar[str] = ""
    kinds: ClassVar[tuple[str, ...]] = ()
    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kinds = cls.kinds or ((cls.kind,) if cls.kind else ())
        if "name" in cls.__dict__ and kinds:
            for kind in kinds:
                if kind not in _REGISTRY:
                    raise TypeError(f"unknown part kind {kind!r}; expected one of {KINDS}")
                _REGISTRY[kind][cls.name] = cls
        # record the arguments every instance is built with, so spec() can rebuild it
        if "__init__" in cls.__dict__:
            init = cls.__dict__["__init__"]
            signature = inspect.signature(init)

            @functools.wraps(init)
            def recording_init(self: Part, *args: Any, **kw: Any) -> None:
                if not hasattr(self, "_spec_kwargs") or type(self).__init__ is recording_init:
                    bound = signature.bind(self, *args, **kw)
                    bound.apply_defaults()
                    arguments = dict(bound.arguments)
                    arguments.pop("self")
                    variadic = [p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD]
                    for name in variadic:
                        arguments.update(arguments.pop(name))
                    object.__setattr__(self, "_spec_kwargs", arguments)
                init(self, *args, **kw)

            cls.__init__ = recording_init  # type: ignore[method-assign]

    def spec(self) -> dict[str, Any]:
        """``{"name": ..., **constructor kwargs}``; raises if a value is not plain JSON."""
        kwargs = {key: _jsonable(value) for key, value in self.__dict__.get("_spec_kwargs", {}).items()}
        spec = {"name": self.name, **kwargs}
        try:
            json.dumps(spec)
        except TypeError as error:
            raise AekitError(
                f"part {type(self).__name__} cannot be saved",
                f"a constructor argument is not a plain JSON value ({error})",
                "pass numbers, strings, lists or dicts, or register the object as a part",
            ) from None
        return spec

    def extra_repr(self) -> str:
        shown = {k: v for k, v in self.__dict__.get("_spec_kwargs", {}).items() if k not in ("in_shape", "out_shape")}
        return ", ".join(f"{k}={v!r}" for k, v in shown.items())


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def names(kind: str) -> list[str]:
    """Registered names of one kind, sorted."""
    return sorted(_registry_of(kind))


def get(kind: str, name: str) -> type[Part]:
    """The class registered as ``name`` for ``kind``; an unknown name lists the choices."""
    table = _registry_of(kind)
    if name not in table:
        raise AekitError(
            f"unknown {kind} {name!r}",
            f"the registered {kind}s are {', '.join(sorted(table))}",
            "pick one of those names",
        )
    return table[name]


def build(kind: str, spec: dict[str, Any] | str, **defaults: Any) -> Part:
    """Build a part from ``{"name": ..., **kwargs}`` (or a bare name); ``defaults`` fill missing kwargs."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise AekitError(f"bad {kind} description {spec!r}", "it needs a 'name' key", 'use {"name": ..., ...}')
    kwargs = {key: value for key, value in spec.items() if key != "name"}
    cls = get(kind, spec["name"])
    parameters = inspect.signature(cls.__init__).parameters
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    for key, value in defaults.items():
        if key in parameters or accepts_any:
            kwargs.setdefault(key, value)
    unknown = [key for key in kwargs if key not in parameters and not accepts_any]
    if unknown:
        allowed = [p for p in parameters if p != "self"]
        raise AekitError(
            f"{kind} {spec['name']!r} has no option {', '.join(map(repr, unknown))}",
            f"its options are {', '.join(allowed) or 'none'}",
            "remove or rename the option",
        )
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        if isinstance(error, AekitError):
            raise
        raise AekitError(f"cannot build {kind} {spec['name']!r}", str(error), "check its options") from None


def _registry_of(kind: str) -> dict[str, type[Part]]:
    if kind not in _REGISTRY:
        raise AekitError(f"unknown part kind {kind!r}", f"the kinds are {', '.join(KINDS)}", "pick one of them")
    return _REGISTRY[kind]
