"""The words of a blueprint for translators: a Babel extractor.

A flow's title, a stage's heading and button, a prompt's labels and help, a deny
stage's message are configuration, yet a person reads them; they are shown through the
catalogue (options marked :attr:`~flask_flows.options.Option.text`, prompt fields), so a
text that a catalogue has reads in the page's language. This extractor puts those texts
into a catalogue template: ``make messages`` runs it over the shipped flows, and an app
runs it over its own blueprints to translate its flows in its own catalogue
(``FLOWS_TRANSLATION_DIRECTORIES``)::

    # babel.cfg
    [flask_flows: flows/*.yaml]

Which options are texts is known for the built-in stage and policy types; any other type
contributes its ``title`` and ``submit_label``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import IO, Any

import yaml

from ..options import Option
from ..stages.base import WORDING
from ..stages.prompt_fields import REFERENCE

#: What Babel wants from an extractor: line, function name (none here), message, comments.
Found = tuple[int, None, str, list[str]]

#: The keys of a prompt field a person reads.
_FIELD_TEXTS = ("label", "help_text", "placeholder")


def extract(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Mapping[str, Any]
) -> Iterator[Found]:
    """Babel's extractor interface: every text of the blueprint in ``fileobj``, with a
    comment saying where it is shown."""
    root = yaml.compose(fileobj.read().decode(options.get("encoding", "utf-8")))
    if not isinstance(root, yaml.MappingNode):
        return
    document = _mapping(root)
    stage_texts, policy_texts = _text_options()
    for entry in _entries(document, "stages"):
        where = f"stage {_scalar(entry.get('name'))}"
        config = _mapping(entry.get("config"))
        texts = stage_texts.get(_scalar(entry.get("type")), tuple(WORDING))
        yield from _options(config, texts, where)
        for field in _sequence(config.get("fields")):
            yield from _field(_mapping(field), where)
    for entry in _entries(document, "policies"):
        texts = policy_texts.get(_scalar(entry.get("type")), ())
        yield from _options(
            _mapping(entry.get("config")), texts, f"policy {_scalar(entry.get('name'))}"
        )
    for entry in _entries(document, "flows"):
        # A flow's page is headed by its title, or by its name when it has none.
        key = "title" if _scalar(entry.get("title")) else "name"
        yield from _text(entry.get(key), f"flow {_scalar(entry.get('slug'))}: {key}")


def _text_options() -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    from ..registry import POLICY_TYPES, STAGE_TYPES

    def texts(options: Mapping[str, Option]) -> tuple[str, ...]:
        return tuple(name for name, option in options.items() if option.text)

    return (
        {stage.name: texts(stage.options) for stage in STAGE_TYPES},
        {policy.name: texts(policy.options) for policy in POLICY_TYPES},
    )


def _options(
    config: Mapping[str, yaml.Node], names: tuple[str, ...], where: str
) -> Iterator[Found]:
    for name in names:
        node = config.get(name)
        if isinstance(node, yaml.SequenceNode):
            for item in node.value:
                yield from _text(item, f"{where}: {name}")
        else:
            yield from _text(node, f"{where}: {name}")


def _field(field: Mapping[str, yaml.Node], where: str) -> Iterator[Found]:
    where = f"{where}, field {_scalar(field.get('field_key'))}"
    for name in _FIELD_TEXTS:
        yield from _text(field.get(name), f"{where}: {name}")
    if _scalar(field.get("type")) == "static" and not REFERENCE.match(
        _scalar(field.get("initial_value"))
    ):
        yield from _text(field.get("initial_value"), f"{where}: text")
    for choice in _sequence(field.get("choices")):
        label = _mapping(choice).get("label") if isinstance(choice, yaml.MappingNode) else choice
        yield from _text(label, f"{where}: choice")


def _text(node: yaml.Node | None, where: str) -> Iterator[Found]:
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":str") and node.value.strip():
        yield node.start_mark.line + 1, None, node.value, [where]


def _entries(document: Mapping[str, yaml.Node], section: str) -> Iterator[dict[str, yaml.Node]]:
    for node in _sequence(document.get(section)):
        yield _mapping(node)


def _mapping(node: yaml.Node | None) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: value for key, value in node.value if isinstance(key, yaml.ScalarNode)}


def _sequence(node: yaml.Node | None) -> list[yaml.Node]:
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _scalar(node: yaml.Node | None) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else ""
