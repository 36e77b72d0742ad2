"""Planting a bug in the real worker code: a source-level mutation of one function or method.

`plant(monkeypatch, owner, name, old, new)` takes the source of `owner.name` (a module-level
function or a class's method), replaces the exact text `old` (which must occur exactly once, so
a planted bug fails loudly when the worker's code changes under it) by `new`, compiles the result
in the function's own module namespace, and installs it with monkeypatch (undone after the test).
The rest of the worker runs unchanged, so a planted bug meets exactly the checks a real one would.
"""

from __future__ import annotations

import inspect
import textwrap
import types


def plant(monkeypatch, owner, name: str, old: str, new: str, also: tuple = ()) -> None:
    """`also`: modules that imported `name` from `owner` and must see the planted version too."""
    func = inspect.getattr_static(owner, name)
    wrapper = None
    if isinstance(func, (staticmethod, classmethod)):
        wrapper, func = type(func), func.__func__
    func = inspect.unwrap(func)   # a decorated function (torch.no_grad): its source re-applies it
    source = textwrap.dedent(inspect.getsource(func))
    count = source.count(old)
    assert count == 1, f"planting in {owner.__name__}.{name}: {old!r} occurs {count} times"
    source = source.replace(old, new)
    # A method compiled outside its class has no __class__ cell for a bare super().
    if isinstance(owner, type):
        source = source.replace("super().", f"super({owner.__name__}, self).")
    namespace = dict(func.__globals__)
    if isinstance(owner, type):
        namespace[owner.__name__] = owner
    code = compile(source, f"<planted {owner.__name__}.{name}>", "exec")
    exec(code, namespace)
    planted = namespace[func.__name__]
    if isinstance(planted, types.FunctionType):
        planted.__qualname__ = func.__qualname__
    monkeypatch.setattr(owner, name, wrapper(planted) if wrapper else planted)
    for module in also:
        monkeypatch.setattr(module, name, planted)
