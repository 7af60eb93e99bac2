"""Inputs typed with DSPy's own types, built from the plain data Elixir sends.

An input field typed `dspy.Image` takes `{"url": url}` or the URL itself (http(s) or a
`data:image/...` URI; Elixir turns `{:image, binary, mime}` into the latter); `dspy.Audio`
takes `{"data": base64, "format": "wav"}` or a `data:audio/...` URI; `dspy.History` takes a
list of message maps (or `{"messages": [...]}`); `dspy.Tool` takes the tool maps ReAct takes
(Elixir sends their specs, the function as its handle). Lists of images or tools are
converted element by element. Nothing here reads a file or fetches a URL: inputs are end-user data.
"""

import typing
import weakref

import dspy

from . import refs, tools
from .errors import BridgeError, quote


def _invalid(field, message):
    return BridgeError("invalid_argument", f"input {quote(field)}: {message}")


def _image(field, value):
    url = value.get("url") if isinstance(value, dict) and set(value) == {"url"} else value
    if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:image/")):
        raise _invalid(field, "an image is %{\"url\" => url} with an http(s) or data:image/ URL, or {:image, binary, mime}")
    return dspy.Image(url=str(url))


def _audio(field, value):
    if isinstance(value, str) and value.startswith("data:audio/"):
        return dspy.Audio(str(value))
    if isinstance(value, dict) and set(value) == {"data", "format"}:
        if isinstance(value["data"], str) and isinstance(value["format"], str):
            return dspy.Audio(data=str(value["data"]), audio_format=str(value["format"]))
    raise _invalid(field, "audio is %{\"data\" => base64, \"format\" => \"wav\"}, a data:audio/ URI, or {:audio, binary, mime}")


def _history(field, value):
    messages = value.get("messages") if isinstance(value, dict) and set(value) == {"messages"} else value
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise _invalid(field, "a history is a list of message maps (each with the signature's fields)")
    return dspy.History(messages=[{str(k): v for k, v in m.items()} for m in messages])


def _tool(field, value):
    if not (isinstance(value, dict) and "key" in value and "name" in value):
        raise _invalid(field, "a tool is %{name: ..., description: ..., args: [...], fun: fn args -> ... end}")
    return tools.tool(value, refs.CALLBACK_TIMEOUT_MS / 1000)


_CONVERTERS = {dspy.Image: _image, dspy.Audio: _audio, dspy.History: _history, dspy.Tool: _tool}
_LISTS = {dspy.Image: _image, dspy.Tool: _tool}


def convert(signature, inputs):
    """`inputs` with the values of DSPy-typed fields built as those types."""
    typed = _typed_fields(signature) if signature is not None else ()
    if not typed:
        return inputs
    converted = dict(inputs)
    for name, convert_one, many in typed:
        value = converted.get(name)
        if value is None:
            continue
        if not many:
            converted[name] = convert_one(name, value)
        elif isinstance(value, list):
            converted[name] = [convert_one(name, v) for v in value]
        else:
            raise _invalid(name, "expected a list")
    return converted


# Per signature class, weakly: a program's signature goes with the program.
_TYPED = weakref.WeakKeyDictionary()


def _typed_fields(signature):
    """The input fields of `signature` that need building: `(name, converter, is_list)`,
    found once per signature. Most signatures have none, and pay nothing per call."""
    try:
        return _TYPED[signature]
    except (KeyError, TypeError):
        pass
    typed = []
    for name, field in signature.input_fields.items():
        annotation = field.annotation
        if annotation in _CONVERTERS:
            typed.append((name, _CONVERTERS[annotation], False))
        elif typing.get_origin(annotation) in (list, typing.List):
            args = typing.get_args(annotation)
            if args and args[0] in _LISTS:
                typed.append((name, _LISTS[args[0]], True))
    typed = tuple(typed)
    try:
        _TYPED[signature] = typed
    except TypeError:  # not weakly referenceable: found again next time
        pass
    return typed
