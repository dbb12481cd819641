"""Rules: which events become which associations, written by users in YAML (HUBLINK_RULES_FILE), not in code.

::

    rules:
      - name: deal-links               # required, unique, [a-z0-9_-], at most 64 characters
        source: workflow               # required: hubspot | workflow | forms:<name> | forms:*
        when:                          # optional; every condition must hold
          subscriptionType: deal.creation   # any key but condition: exact match of that top-level payload
                                            # field (a list: any of; 5 does not match "5", nor true 1)
          condition: "properties.amount > `0`"   # JMESPath over the payload, truthy as JMESPath has it
          # changeSource: API              # naming changeSource opts in to the association changes HubLink's
                                           # own writes cause (dropped as ``self`` otherwise: is_self_triggered)
        associations:                  # required, 1 to 20
          - from: {objectType: deals, id: "objectId"}   # id: JMESPath over the payload giving a record id
            action: link               # optional: link (default) or unlink (removes the association)
            label: Decision maker      # optional: a label's name for this pair of object types (checked
                                       # against HubSpot's label definitions when the worker starts), or
            # types: [{associationCategory: HUBSPOT_DEFINED, associationTypeId: 5}]   # explicit types
            to:
              objectType: companies    # a name (singular or plural) or a type id, as canonical_object_type
              lookup:                  # instead of id: exactly one of property or search, run by a worker
                property: {objectType: deals, id: "objectId", name: associatedcompanyid}
                # search: {property: domain, value: "company_domain", onMultiple: first}  # skip, dead-letter

A top-level ``sources`` section may sit next to ``rules`` (``domain.sources`` reads it), and top-level keys
starting ``x-`` hold anchors for reuse (``x-deal: &deal {objectType: deals, id: objectId}``). Loading checks
everything and raises :class:`RulesError` listing every problem as ``FILE:LINE: rule 'NAME': field: what is
wrong``. Evaluating never raises: a rule that matches but cannot be applied to an odd payload yields a problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import jmespath
import yaml
from jmespath.exceptions import JMESPathError
from jmespath.functions import Functions

from hublink.domain.associations import (
    Action,
    AssociationType,
    Mode,
    canonical_object_type,
    check_label,
    check_object_id,
    check_types,
)
from hublink.domain.errors import ConfigError
from hublink.domain.events import CrmEvent

OnMultiple = Literal["first", "skip", "dead-letter"]
ON_MULTIPLE: tuple[OnMultiple, ...] = ("first", "skip", "dead-letter")
MAX_ASSOCIATIONS = 20
#: Longest search value planned; HubSpot's search takes short values, and a longer one is a payload fault.
MAX_SEARCH_VALUE_CHARS = 500
_NAME = re.compile(r"\A[a-z0-9_-]{1,64}\Z")
_SOURCE = re.compile(r"\A(?:hubspot|workflow|forms:(?:\*|[a-z0-9][a-z0-9_-]{0,63}))\Z")
_PROPERTY = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z")
# What JMESPath's functions and comparisons may raise on odd data; evaluate() turns each into a problem.
_EVAL_ERRORS = (JMESPathError, TypeError, ValueError, ArithmeticError, LookupError, RecursionError)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Fixed:
    """A record named directly by the event."""

    object_type: str
    object_id: str


@dataclass(frozen=True, slots=True)
class PropertyLookup:
    """Read ``property`` of (object_type, object_id): its value is the id of a ``target_type`` record."""

    target_type: str
    object_type: str
    object_id: str
    property: str


@dataclass(frozen=True, slots=True)
class SearchLookup:
    """Find ``target_type`` records whose ``property`` equals ``value``; ``on_multiple`` says what several mean."""

    target_type: str
    property: str
    value: str
    on_multiple: OnMultiple


Side = Fixed | PropertyLookup | SearchLookup


@dataclass(frozen=True, slots=True)
class PlannedAssociation:
    """What one rule asks for one event: two sides, each known or still to be looked up."""

    rule: str
    from_side: Side
    to_side: Side
    action: Action = "link"
    label: str | None = None
    types: tuple[AssociationType, ...] = ()
    mode: Mode = "add"


@dataclass(frozen=True, slots=True)
class Options:
    """What a rule association asks of HubSpot besides its two records: the action and its label or types."""

    action: Action = "link"
    label: str | None = None
    types: tuple[AssociationType, ...] = ()
    mode: Mode = "add"

    def summary(self) -> str:
        """`` (unlink, label 'X')`` for ``describe``; empty for a default link."""
        parts = ["unlink"] if self.action == "unlink" else []
        if self.mode == "replace":
            parts.append("replace")
        if self.label is not None:
            parts.append(f"label {self.label!r}")
        if self.types:
            parts.append("types " + ", ".join(f"{c}/{t}" for c, t in self.types))
        return f" ({', '.join(parts)})" if parts else ""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The result of running the rules on one event; ``problems`` name the rule and field that could not apply."""

    planned: tuple[PlannedAssociation, ...]
    matched_rules: tuple[str, ...]
    problems: tuple[str, ...]
    #: The event is an association change HubLink's own write caused: only rules naming changeSource saw it.
    self_triggered: bool = False


#: The event field that says what made a change (``API``, ``CRM_UI``, ``IMPORT``...).
CHANGE_SOURCE = "changeSource"


def is_self_triggered(event: CrmEvent, app_id: str | None) -> bool:
    """True for a HubSpot ``*.associationChange`` that app ``app_id``'s own API write caused.

    HubSpot fires an association change for every association added or removed through the API, HubLink's
    own writes included, with ``changeSource`` ``API`` and the writing app's id as ``sourceId``
    (docs/reference/hubspot.md §9.5; the id may come bare, as a number, or as ``app:<id>``/``appId:<id>``).
    Without an app id (HUBSPOT_APP_ID unset) nothing is taken for HubLink's own.
    """
    if not app_id or event.source != "hubspot" or not (event.subscription_type or "").endswith(".associationChange"):
        return False
    payload = event.payload
    if payload.get(CHANGE_SOURCE) != "API":
        return False
    source_id = payload.get("sourceId")
    if isinstance(source_id, bool) or not isinstance(source_id, str | int):
        return False
    text = str(source_id).strip()
    prefix, _, tail = text.rpartition(":")
    return text == app_id or (tail == app_id and prefix.casefold() in {"app", "appid"})


class RulesError(ConfigError):
    """A rules file is invalid; ``problems`` lists every problem as ``FILE:LINE: rule 'NAME': field: ...``."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("invalid rules:\n" + "\n".join(problems))
        self.problems = tuple(problems)


def _shown(value: object) -> str:
    """A value for a message, short whatever it is."""
    if isinstance(value, int | float) and not isinstance(value, bool) and not abs(value) < 10**40:
        return "a huge number"
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "an array"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- the compiled form ---


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled JMESPath expression; ``field`` is set when it only reads one top-level field."""

    text: str
    compiled: Any
    field: str | None

    def search(self, payload: Any) -> Any:
        """The expression's value over ``payload``; raises what JMESPath raises on odd data."""
        # Most rules read a top-level field ("objectId"): a dict lookup gives the same answer twenty times faster.
        if self.field is not None:
            return _get(payload, self.field)
        return self.compiled.search(payload)


@dataclass(frozen=True, slots=True)
class SideRule:
    """One side of a rule's association: ``kind`` id (``expr`` gives the id), property or search."""

    object_type: str
    kind: Literal["id", "property", "search"]
    expr: Expression  # id: the record id; property: the id of the record read; search: the value sought
    record_type: str = ""  # property: the type of the record read
    property: str = ""  # property: the property read; search: the property compared
    on_multiple: OnMultiple = "first"
    label: str = ""  # where its problems are reported: "associations[0].to.id"

    def summary(self) -> str:
        """A one-line description for ``describe``."""
        if self.kind == "id":
            return f"{self.object_type}/{{{self.expr.text}}}"
        if self.kind == "property":
            return f"{self.object_type} named by {self.record_type}/{{{self.expr.text}}}.{self.property}"
        return f"{self.object_type} where {self.property} = {{{self.expr.text}}} (onMultiple {self.on_multiple})"


@dataclass(frozen=True, slots=True)
class Rule:
    """One validated rule; ``line`` is where it starts in its file."""

    name: str
    source: str
    line: int
    equals: tuple[tuple[str, tuple[str | int | float | bool, ...]], ...]
    condition: Expression | None
    associations: tuple[tuple[SideRule, SideRule], ...]
    #: One per association (same order); empty in rules built before options existed: all defaults.
    options: tuple[Options, ...] = ()

    def options_of(self, index: int) -> Options:
        """The options of association ``index``."""
        return self.options[index] if index < len(self.options) else _DEFAULT_OPTIONS

    @property
    def names_change_source(self) -> bool:
        """True when ``when`` names ``changeSource``: the rule opts in to the changes HubLink's own writes cause."""
        return any(key == CHANGE_SOURCE for key, _ in self.equals)

    def applies_to(self, source: str) -> bool:
        """True when the rule listens to ``source`` (``forms:*`` listens to every form)."""
        return self.source == source or (self.source == "forms:*" and source.startswith("forms:"))

    def matches(self, payload: Any) -> bool:
        """True when every ``when`` condition holds; raises what JMESPath raises on odd data."""
        for key, values in self.equals:
            actual = _get(payload, key)
            for expected in values:
                if _same(expected, actual):
                    break
            else:
                return False
        return self.condition is None or _truthy(self.condition.search(payload))


def _get(payload: Any, key: str) -> Any:
    """``payload[key]``, or None when it is absent or the payload is not an object (as JMESPath has it)."""
    try:
        return payload.get(key)
    except AttributeError:  # cheaper than isinstance(payload, Mapping) on every call, and payloads are dicts
        return None


def _same(expected: object, actual: object) -> bool:
    """Exact match: a boolean only equals a boolean (Python's True == 1 would surprise), a string a string."""
    if isinstance(expected, bool | str) or isinstance(actual, bool | str):
        return type(expected) is type(actual) and expected == actual
    return isinstance(actual, int | float) and expected == actual


def _truthy(value: Any) -> bool:
    """JMESPath's truth: false, null and empty strings, arrays and objects are false; 0 is true."""
    return not (value is None or value is False or (isinstance(value, str | list | dict) and not value))


# --- loading: YAML with a line for every mapping, key and list item ---


class _Lined(dict[str, Any]):
    """A YAML mapping that remembers its line, each key's line and any key given twice."""

    __slots__ = ("duplicates", "key_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line, self.key_lines, self.duplicates = line, dict[str, int](), list[tuple[str, int]]()

    def at(self, key: str) -> int:
        """The line of ``key``, or of the mapping when the key is absent."""
        return self.key_lines.get(key, self.line)


class _LinedList(list[Any]):
    """A YAML sequence that remembers each item's line."""

    __slots__ = ("lines",)
    lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that builds :class:`_Lined` mappings and :class:`_LinedList` sequences."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[_Lined]:
    """Build a mapping with the lines of its keys, noting keys given twice (merged ones may be overridden)."""
    own = sum(1 for key_node, _ in node.value if key_node.tag != "tag:yaml.org,2002:merge")
    loader.flatten_mapping(node)  # resolves "<<" merge keys as SafeLoader does, putting merged pairs first
    data = _Lined(node.start_mark.line + 1)
    yield data  # first, as SafeLoader does, so that aliases back to this mapping resolve
    explicit: set[str] = set()  # a key given here may override a merged one, but not another key given here
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=True)
        key = key if isinstance(key, str) else _shown(key)
        if index >= len(node.value) - own:
            if key in explicit:
                data.duplicates.append((key, key_node.start_mark.line + 1))
            explicit.add(key)
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines.setdefault(key, key_node.start_mark.line + 1)


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> Iterator[_LinedList]:
    """Build a list with the line of each item."""
    data = _LinedList()
    data.lines = [item.start_mark.line + 1 for item in node.value]
    yield data
    data.extend(loader.construct_object(item, deep=True) for item in node.value)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def _function_problems(node: Any) -> Iterator[str]:
    """Unknown functions and wrong argument counts, which JMESPath itself only notices when it runs."""
    if not isinstance(node, dict):
        return
    if node.get("type") == "function_expression":
        name, args = node.get("value"), node.get("children", [])
        signature = Functions.FUNCTION_TABLE.get(name, {}).get("signature")
        variadic = bool(signature) and signature[-1].get("variadic", False)
        if signature is None:
            yield f"unknown function {name}()"
        elif len(args) < len(signature) or (not variadic and len(args) > len(signature)):
            yield f"{name}() takes {'at least ' if variadic else ''}{len(signature)} argument(s), got {len(args)}"
    for child in node.get("children", []):
        yield from _function_problems(child)


# Parsers for single values, used through _Builder.value: each returns the value or raises ValueError saying why.


def _expression(text: object) -> Expression:
    """Compile a JMESPath expression, checking its function names and argument counts too."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected a JMESPath expression string, got {_shown(text)}")
    try:
        compiled = jmespath.compile(text)
    except JMESPathError as exc:
        detail = str(exc).splitlines()[0].removeprefix("Invalid jmespath expression: ")
        raise ValueError(f"invalid JMESPath {text!r}: {detail}") from None
    if bad := list(_function_problems(compiled.parsed)):
        raise ValueError(f"invalid JMESPath {text!r}: {'; '.join(bad)}")
    field = compiled.parsed["value"] if compiled.parsed.get("type") == "field" else None
    return Expression(text, compiled, field)


def _property_name(value: object) -> str:
    """A HubSpot property name."""
    if not isinstance(value, str) or not _PROPERTY.match(value):
        raise ValueError(f"expected a HubSpot property name, got {_shown(value)}")
    return value


def _on_multiple(value: object) -> OnMultiple:
    """What a search finding several records does: first, skip or dead-letter."""
    for choice in ON_MULTIPLE:
        if value == choice:
            return choice
    raise ValueError(f"expected first, skip or dead-letter, got {_shown(value)}")


def _action(value: object) -> Action:
    """A rule association's action: link or unlink."""
    if value == "link" or value == "unlink":
        return "link" if value == "link" else "unlink"
    raise ValueError(f"expected link or unlink, got {_shown(value)}")


def _mode(value: object) -> Mode:
    """A rule association's mode: add or replace."""
    if value == "add" or value == "replace":
        return "add" if value == "add" else "replace"
    raise ValueError(f"expected add or replace, got {_shown(value)}")


def _source(value: object) -> str:
    """A rule's source: hubspot, workflow, forms:<name> or forms:*."""
    if not isinstance(value, str) or not _SOURCE.match(value):
        raise ValueError(f"expected hubspot, workflow, forms:<name> or forms:*, got {_shown(value)}")
    return value


def _match_values(value: object) -> tuple[str | int | float | bool, ...]:
    """A when field's accepted values: one scalar or a non-empty list of them."""
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str | int | float) for v in values):
        raise ValueError(f"expected a string, number or boolean, or a non-empty list of them, got {_shown(value)}")
    return tuple(values)


class _Builder:
    """Turns the loaded YAML into rules, collecting every problem with its line."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[str] = []

    def problem(self, line: int, rule: str | None, message: str) -> None:
        """Record ``FILE:LINE: rule 'NAME': message``."""
        self.problems.append(f"{self.filename}:{line}: " + (f"rule '{rule}': " if rule else "") + message)

    def keys(self, raw: _Lined, allowed: Sequence[str], required: Sequence[str], rule: str | None, where: str) -> None:
        """Report unknown, missing and repeated keys of one mapping."""
        prefix = f"{where}: " if where else ""
        for key in raw:
            if key not in allowed:
                self.problem(raw.at(key), rule, f"{prefix}unknown key {key!r} (expected {', '.join(allowed)})")
        for key in required:
            if key not in raw:
                self.problem(raw.line, rule, f"{prefix}missing required key {key!r}")
        for key, line in raw.duplicates:
            self.problem(line, rule, f"{prefix}key {key!r} given twice")

    def value(self, raw: _Lined, key: str, parse: Callable[[Any], _T], rule: str, where: str) -> _T | None:
        """``parse(raw[key])``, or None when the key is absent (reported by ``keys``) or its value is refused."""
        if key not in raw:
            return None
        try:
            return parse(raw[key])
        except ValueError as exc:
            self.problem(raw.at(key), rule, f"{where}{'.' if where else ''}{key}: {exc}")
            return None

    def side(self, raw: Any, line: int, rule: str, where: str) -> SideRule | None:
        """One from or to side (``line`` is its key's); None when it has problems."""
        if not isinstance(raw, _Lined):
            self.problem(line, rule, f"{where}: expected a mapping with objectType and id or lookup")
            return None
        self.keys(raw, ("objectType", "id", "lookup"), ("objectType",), rule, where)
        object_type = self.value(raw, "objectType", canonical_object_type, rule, where)
        if ("id" in raw) == ("lookup" in raw):
            self.problem(line, rule, f"{where}: give exactly one of id or lookup")
            return None
        if "id" in raw:
            expr = self.value(raw, "id", _expression, rule, where)
            return SideRule(object_type, "id", expr, label=f"{where}.id") if object_type and expr else None
        lookup = raw["lookup"]
        if not isinstance(lookup, _Lined) or len(lookup) != 1 or not {"property", "search"} & lookup.keys():
            self.problem(raw.at("lookup"), rule, f"{where}.lookup: expected exactly one of property or search")
            return None
        kind, spec = next(iter(lookup.items()))
        where = f"{where}.lookup.{kind}"
        if not isinstance(spec, _Lined):
            self.problem(lookup.at(kind), rule, f"{where}: expected a mapping, got {_shown(spec)}")
            return None
        if kind == "property":
            self.keys(spec, ("objectType", "id", "name"), ("objectType", "id", "name"), rule, where)
            record_type = self.value(spec, "objectType", canonical_object_type, rule, where)
            expr = self.value(spec, "id", _expression, rule, where)
            name = self.value(spec, "name", _property_name, rule, where)
            if object_type and record_type and expr and name:
                label = f"{where}.id"
                return SideRule(object_type, "property", expr, record_type=record_type, property=name, label=label)
            return None
        self.keys(spec, ("property", "value", "onMultiple"), ("property", "value"), rule, where)
        prop = self.value(spec, "property", _property_name, rule, where)
        expr = self.value(spec, "value", _expression, rule, where)
        on_multiple = self.value(spec, "onMultiple", _on_multiple, rule, where) if "onMultiple" in spec else "first"
        if object_type and prop and expr and on_multiple:
            label = f"{where}.value"
            return SideRule(object_type, "search", expr, property=prop, on_multiple=on_multiple, label=label)
        return None

    def rule(self, raw: Any, index: int, line: int, seen: set[str]) -> Rule | None:
        """One rule (``line`` is its list item's); its problems are recorded, and it is dropped when any exist."""
        if not isinstance(raw, _Lined):
            self.problem(line, None, f"rules[{index}]: expected a mapping with name, source and associations")
            return None
        name = raw.get("name")
        label = name if isinstance(name, str) and _NAME.match(name) else f"#{index + 1}"
        self.keys(raw, ("name", "source", "when", "associations"), ("name", "source", "associations"), label, "")
        if "name" in raw and label != name:
            self.problem(raw.at("name"), label, f"name: expected [a-z0-9_-], 1 to 64 characters, got {_shown(name)}")
        elif label in seen:
            self.problem(raw.at("name"), label, "name: duplicate rule name")
        seen.add(label)
        source = self.value(raw, "source", _source, label, "")
        equals: list[tuple[str, tuple[str | int | float | bool, ...]]] = []
        condition = None
        when = raw.get("when")
        if isinstance(when, _Lined):
            self.keys(when, list(when), (), label, "when")  # any key may name a payload field: only repeats are wrong
            condition = self.value(when, "condition", _expression, label, "when")
            for key in when.keys() - {"condition"}:
                if (values := self.value(when, key, _match_values, label, "when")) is not None:
                    equals.append((key, values))
        elif "when" in raw:
            self.problem(raw.at("when"), label, f"when: expected a mapping of conditions, got {_shown(when)}")
        items = raw.get("associations")
        sides: list[tuple[SideRule, SideRule]] = []
        options: list[Options] = []
        fits = isinstance(items, _LinedList) and 1 <= len(items) <= MAX_ASSOCIATIONS
        pairs = zip(items, items.lines, strict=True) if isinstance(items, _LinedList) and fits else ()
        if "associations" in raw and not fits:
            got = f"{len(items)}" if isinstance(items, list) else _shown(items)
            self.problem(raw.at("associations"), label, f"associations: expected 1 to {MAX_ASSOCIATIONS}, got {got}")
        for i, (item, item_line) in enumerate(pairs):
            where = f"associations[{i}]"
            if not isinstance(item, _Lined):
                self.problem(item_line, label, f"{where}: expected a mapping with from and to, got {_shown(item)}")
                continue
            self.keys(item, ("from", "to", "action", "label", "types", "mode"), ("from", "to"), label, where)
            pair = [
                self.side(item[end], item.at(end), label, f"{where}.{end}") for end in ("from", "to") if end in item
            ]
            if "label" in item and "types" in item:
                self.problem(item.at("types"), label, f"{where}: give label or types, not both")
            action = self.value(item, "action", _action, label, where) or "link"
            label_name = self.value(item, "label", check_label, label, where)
            types = self.value(item, "types", check_types, label, where) or ()
            mode = self.value(item, "mode", _mode, label, where) or "add"
            if mode == "replace" and action == "unlink":
                self.problem(
                    item.at("mode"), label, f"{where}: mode replace sets what is linked: not with action unlink"
                )
            if len(pair) == 2 and pair[0] and pair[1]:
                sides.append((pair[0], pair[1]))
                options.append(Options(action, label_name, types, mode))
        return Rule(label, source or "", raw.line, tuple(equals), condition, tuple(sides), tuple(options))


class RuleSet:
    """A validated, immutable set of rules, in file order."""

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._by_source: dict[str, tuple[Rule, ...]] = {}

    @classmethod
    def empty(cls) -> RuleSet:
        """No rules: every event is acknowledged as unmatched."""
        return cls(())

    @classmethod
    def load(cls, text: str, filename: str = "<rules>") -> RuleSet:
        """Parse and validate rules YAML; raise RulesError listing every problem with its file and line."""
        try:
            # The reader refuses control characters (say, U+009E) as soon as it is built: a problem like any other.
            loader = _LineLoader(text)
        except yaml.reader.ReaderError as exc:
            line = text[: exc.position].count("\n") + 1
            character = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
            raise RulesError([f"{filename}:{line}: not valid YAML: {exc.reason} ({character})"]) from None
        try:
            doc = loader.get_single_data()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
            line = mark.line + 1 if mark is not None else 1
            raise RulesError([f"{filename}:{line}: not valid YAML: {getattr(exc, 'problem', None) or exc}"]) from None
        except (ValueError, RecursionError) as exc:  # an integer too long to convert, nesting too deep
            raise RulesError([f"{filename}:1: not usable YAML: {str(exc)[:100]}"]) from None
        finally:
            loader.dispose()
        if not isinstance(doc, _Lined):
            raise RulesError([f"{filename}:1: expected a mapping with a 'rules' list, got {_shown(doc)}"])
        builder = _Builder(filename)
        # x- keys are free for YAML anchors to reuse (as in Compose files): "x-deal: &deal {objectType: deals}".
        builder.keys(doc, ("rules", "sources", *(k for k in doc if k.startswith("x-"))), ("rules",), None, "")
        items = doc.get("rules")
        if "rules" in doc and not isinstance(items, _LinedList):
            builder.problem(doc.at("rules"), None, f"rules: expected a list of rules, got {_shown(items)}")
        seen: set[str] = set()
        pairs = zip(items, items.lines, strict=True) if isinstance(items, _LinedList) else ()
        rules = [builder.rule(raw, i, line, seen) for i, (raw, line) in enumerate(pairs)]
        if builder.problems:
            raise RulesError(builder.problems)
        return cls([r for r in rules if r is not None])

    def rules_for(self, source: str) -> tuple[Rule, ...]:
        """The rules listening to ``source``, in file order."""
        found = self._by_source.get(source)
        if found is None:
            found = tuple(r for r in self.rules if r.applies_to(source))
            if len(self._by_source) < 256:  # sources come from configuration, but stay bounded whatever is passed
                self._by_source[source] = found
        return found

    def evaluate(self, event: CrmEvent, *, own_app_id: str | None = None) -> Evaluation:
        """Run every rule listening to the event's source; never raises, whatever the payload holds.

        An association change HubLink's own write caused (:func:`is_self_triggered` with ``own_app_id``) is
        seen only by rules whose ``when`` names ``changeSource``: a rule on association changes would
        otherwise trigger itself. Without ``own_app_id`` every rule sees every event.
        """
        planned: list[PlannedAssociation] = []
        matched: list[str] = []
        problems: list[str] = []
        own = is_self_triggered(event, own_app_id)
        for rule in self.rules_for(event.source):
            if own and not rule.names_change_source:
                continue
            try:
                if not rule.matches(event.payload):
                    continue
            except _EVAL_ERRORS as exc:
                text = rule.condition.text if rule.condition else ""
                problems.append(f"rule '{rule.name}': when.condition: expression {text!r} failed: {_reason(exc)}")
                continue
            matched.append(rule.name)
            for index, (from_rule, to_rule) in enumerate(rule.associations):
                from_side, to_side = _resolve(from_rule, event.payload), _resolve(to_rule, event.payload)
                if isinstance(from_side, Fixed) and isinstance(to_side, Fixed) and from_side == to_side:
                    to_side = f"associations[{index}]: from and to are the same record {_describe(from_side)}"
                if not isinstance(from_side, str) and not isinstance(to_side, str):
                    opts = rule.options_of(index)
                    planned.append(
                        PlannedAssociation(
                            rule.name, from_side, to_side, opts.action, opts.label, opts.types, opts.mode
                        )
                    )
                else:
                    problems.extend(f"rule '{rule.name}': {s}" for s in (from_side, to_side) if isinstance(s, str))
        return Evaluation(tuple(planned), tuple(matched), tuple(problems), self_triggered=own)

    def describe(self) -> list[dict[str, Any]]:
        """A summary of each rule for the CLI: name, source, line, when and one line per association."""
        return [
            {
                "name": r.name,
                "source": r.source,
                "line": r.line,
                "when": {k: v[0] if len(v) == 1 else list(v) for k, v in r.equals}
                | ({"condition": r.condition.text} if r.condition else {}),
                "associations": [
                    f"{f.summary()} -> {t.summary()}{r.options_of(i).summary()}"
                    for i, (f, t) in enumerate(r.associations)
                ],
            }
            for r in self.rules
        ]


_DEFAULT_OPTIONS = Options()


def _reason(exc: BaseException) -> str:
    """An exception's first line, short (JMESPath's type errors quote the whole offending value)."""
    try:
        text = str(exc).strip() or type(exc).__name__
    except (ValueError, RecursionError):  # str() of a value too big to print
        text = type(exc).__name__
    text = text.splitlines()[0]
    return text if len(text) <= 120 else text[:117] + "..."


def _describe(side: Fixed) -> str:
    """``type/id``, for messages."""
    return f"{side.object_type}/{side.object_id}"


def _resolve(spec: SideRule, payload: Any) -> Side | str:
    """The side a rule names for this payload, or a problem (without the rule's name) saying why not."""
    where = spec.label  # messages are built only on the way out: this runs for every event
    try:
        value = spec.expr.search(payload)
    except _EVAL_ERRORS as exc:
        return f"{where}: expression {spec.expr.text!r} failed: {_reason(exc)}"
    if value is None:
        return f"{where}: expression {spec.expr.text!r} found nothing"
    is_int = value.__class__ is int  # not bool, whose class is bool
    text = str(value) if is_int and -(10**20) < value < 10**20 else value.strip() if isinstance(value, str) else ""
    if spec.kind == "search":
        if not text or len(text) > MAX_SEARCH_VALUE_CHARS:
            return f"{where}: expected a short non-empty string or an integer, got {_shown(value)}"
        return SearchLookup(spec.object_type, spec.property, text, spec.on_multiple)
    if is_int and 0 < value < 10**20:
        found = text  # str() of a positive int is already an id's canonical form
    else:
        try:
            found = check_object_id(text)
        except ValueError:
            return f"{where}: expected a record id, got {_shown(value)}"
    if spec.kind == "property":
        return PropertyLookup(spec.object_type, spec.record_type, found, spec.property)
    return Fixed(spec.object_type, found)
