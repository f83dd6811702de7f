"""What jsonargparse says badly or lets through about the model config (used by the `pks4` parser).

* `one_line(message)`: one line out of a jsonargparse error;
* `nested_nulls(args)` and `misplaced_null(net)`: `null` for arguments of the classes nested in
  `model.net` (jsonargparse 4.53 turns `--model.net.backbone.img_size null` into the string
  'None', and accepts null from a file or a dict for any type, e.g. `radius: null` for an int).

One line:

A typo inside a nested `class_path`/`init_args` (the net, its backbone, its head) reaches the user
as several indented lines that repeat the whole parsed value, e.g.

    Parser key "model.net":
      Type typing.Callable[...] expects a function or a callable class: Parser key "head":
        Type typing.Callable[...] expects a function or a callable class: Option 'use_corelation'
        is not accepted. Got value: Namespace(class_path='pks4_lit.models.PKS4', ...). Got value: ...

`one_line` turns it into

    model.net.head.use_corelation: not an argument of pks4_lit.models.PKS4 (did you mean use_correlation?)

Messages it does not recognise come back as their first clause, on one line.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import json
import re
import types
import typing

_KEY = re.compile(r'Parser key "([^"]+)":')
_CLASS_PROBLEM = re.compile(r"Problem with given class_path '([\w.]+)':")
_CALLABLE = "expects a function or a callable class: "
_GOT_CLASS = re.compile(r"class_path='([\w.]+)'")


def _arguments(class_path: str) -> list[str]:
    """Constructor arguments of a class (the first one is given by the caller for nested models:
    dim for heads, num_classes for nets, so it is not offered)."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
        params = [p for p in inspect.signature(cls).parameters.values()
                  if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    except Exception:
        return []
    return [p.name for p in params if p.name not in ("dim", "num_classes")]


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _strip_values(text: str) -> str:
    return text.split(". Got value:", 1)[0].split("\n    Given value", 1)[0].strip()


def _reason(text: str, key: str, class_path: str | None) -> str:
    """The innermost clause of a nested error → 'key: what is wrong'."""
    text = text.strip()
    m = re.match(r"Option '([^']+)' is not accepted", text)
    if m:
        where = f" of {class_path}" if class_path else ""
        args = _arguments(class_path) if class_path else []
        return f"{key}.{m.group(1)}: not an argument{where}" + _suggest(m.group(1), args)
    m = re.match(r"Unexpected keys: \{'([^']+)'", text)
    if m:
        return f"{key}.{m.group(1)}: not an accepted key"
    m = re.match(r"Expected a (.+?)\. Got value: (.*?)(?:\. Got value:|$)", text, re.S)
    if m:
        expected = re.sub(r"<class '([\w.]+)'>", r"\1", m.group(1)).replace("typing.", "")
        return f"{key}: expected {expected}, got {m.group(2).strip()!r}"
    if text.startswith("Does not validate against any of the Union subtypes"):
        errors = [e.strip()[2:] for e in text.split("Errors:", 1)[-1].splitlines() if e.strip().startswith("- ")]
        types_ = [re.fullmatch(r"Expected a <class '(\w+)'>", e) for e in errors]
        given = re.search(r"Given value: (.*?)(?:\. Got value:|\n|$)", text)
        if types_ and all(types_) and given:
            names = " | ".join("None" if t.group(1) == "NoneType" else t.group(1) for t in types_)
            return f"{key}: expected {names}, got {given.group(1).strip()!r}"
        errors = [e for e in errors if "NoneType" not in e] or errors
        return _reason(errors[0], key, class_path) if errors else f"{key}: {_strip_values(text)}"
    if "Expected a path but" in text or "Expected a dot import path" in text or "has no attribute" in text:
        name = re.search(r"Expected a dot import path string: ([^\s.]+(?:\.[^\s.]+)*)", text)
        missing = re.search(r"(module '[\w.]+' has no attribute '\w+')", text)
        what = missing.group(1) if missing else f"{name.group(1) if name else 'the value'} is not an importable class"
        return f"{key}: {what} (give a class_path such as pks4_lit.models.PKS4, or a class name)"
    return f"{key}: {' '.join(_strip_values(text).split())}"


def one_line(message: str, group_arguments: dict[str, list[str]] | None = None) -> str:
    """message: a jsonargparse error; group_arguments: {group: its keys}, for did-you-mean on
    'Group ... does not accept option ...'."""
    m = (re.search(r"does not accept option '([\w.]+)'", message)
         or re.search(r"unrecognized arguments: --([\w.]+)", message))
    if m:
        full = m.group(1)
        group = re.search(r"Group '([\w.]+)' does not accept", message)
        full = f"{group.group(1)}.{full}" if group else full
        group, _, option = full.rpartition(".")
        return f"{full}: unknown key" + _suggest(option, (group_arguments or {}).get(group, []))
    keys = list(_KEY.finditer(message))
    if not keys:
        return " ".join(_strip_values(message).split())
    key = ".".join(k.group(1) for k in keys)
    # the innermost clause follows the last 'Parser key', 'class_path ...:' or 'callable class:' marker
    marks = [(k.end(), None) for k in keys] + [(c.end(), c.group(1)) for c in _CLASS_PROBLEM.finditer(message)]
    start = message.rfind(_CALLABLE)
    if start >= 0:
        marks.append((start + len(_CALLABLE), None))
    end, class_path = max(marks)
    tail = message[end:]
    if class_path is None:
        got = _GOT_CLASS.search(tail)
        class_path = got.group(1) if got else None
    if class_path is None:
        problems = list(_CLASS_PROBLEM.finditer(message))
        class_path = problems[-1].group(1) if problems else None
    return _reason(tail, key, class_path)


def nested_nulls(args: list[str]) -> list[str]:
    """`--model.net.backbone.img_size null` → `--model.net.backbone '{"img_size": null}'` (parsed right)."""
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if "=" in arg:
            key, value, step = *arg.split("=", 1), 1
        else:
            key, value, step = arg, args[i + 1] if i + 1 < len(args) else None, 2
        parts = [p for p in key.lstrip("-").split(".") if p != "init_args"]
        if key.startswith("--model.net.") and value == "null" and len(parts) >= 4:
            out += ["--" + ".".join(parts[:-1]), json.dumps({parts[-1]: None})]
            i += step
            continue
        out.append(arg)
        i += 1
    return out


def _admits_none(hint) -> bool:
    if hint is typing.Any or hint is type(None):
        return True
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def misplaced_null(node, key: str) -> str | None:
    """The first `null` given to an argument whose type does not admit None, in the class_path/init_args
    tree `node` (a Namespace or dict), as a jsonargparse-style message for `one_line`; else None."""
    get = (lambda k: node.get(k)) if hasattr(node, "get") else (lambda k: None)
    class_path, init_args = get("class_path"), get("init_args")
    if not isinstance(class_path, str) or init_args is None:
        return None
    module, _, name = class_path.rpartition(".")
    try:
        hints = typing.get_type_hints(getattr(importlib.import_module(module), name).__init__)
    except Exception:
        return None
    items = vars(init_args).items() if hasattr(init_args, "__dict__") else dict(init_args).items()
    for arg, value in items:
        if value is None and arg in hints and not _admits_none(hints[arg]):
            hint = hints[arg]
            shown = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
            return f'Parser key "{key}.{arg}":\n  Expected a {shown}. Got value: null'
        found = misplaced_null(value, f"{key}.{arg}")
        if found:
            return found
    return None
