"""Rules: which events become which associations, written in YAML by users, not in code.

::

    rules:
      - name: deal-links                 # unique, [a-z0-9_-]+
        source: workflow                 # hubspot | workflow | forms:<name> | forms:*
        when:                            # optional; every condition must hold
          subscriptionType: deal.creation   # exact match of a payload field (a list: any of)
          condition: "properties.amount > `0`"   # JMESPath over the payload, truthy
        associations:                    # 1 to 20
          - from: {objectType: deals, id: "objectId"}          # id: JMESPath over the payload
            to:
              objectType: companies
              lookup:                    # instead of id: found by the worker
                property: {objectType: deals, id: "objectId", name: associatedcompanyid}
                # or search: {property: domain, value: "company_domain", onMultiple: first|skip|dead-letter}

Loading checks everything and reports every problem as ``FILE:LINE: rule 'NAME': field: what is wrong``.
Evaluating never raises: a rule that matches but cannot be applied to an odd payload yields a problem.
A top-level ``sources`` section is allowed (read by ``domain.sources``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import jmespath
import yaml
from jmespath.exceptions import JMESPathError

from hublink.domain.associations import canonical_object_type, check_object_id
from hublink.domain.errors import ConfigError
from hublink.domain.events import CrmEvent

OnMultiple = Literal["first", "skip", "dead-letter"]
_NAME = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")
_SOURCE = re.compile(r"\A(hubspot|workflow|forms:(\*|[a-z0-9][a-z0-9_-]{0,63}))\Z")
MAX_ASSOCIATIONS = 20


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
    """Find ``target_type`` records whose ``property`` equals ``value``."""

    target_type: str
    property: str
    value: str
    on_multiple: OnMultiple


Side = Fixed | PropertyLookup | SearchLookup


@dataclass(frozen=True, slots=True)
class PlannedAssociation:
    """What one rule asks for one event: two sides, either known or to be looked up."""

    rule: str
    from_side: Side
    to_side: Side


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The result of running the rules on one event."""

    planned: tuple[PlannedAssociation, ...]
    matched_rules: tuple[str, ...]
    problems: tuple[str, ...]


class RulesError(ConfigError):
    """A rules file is invalid; ``problems`` lists every problem with its file and line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid rules:\n" + "\n".join(problems))
        self.problems = tuple(problems)


# --- the compiled form ---


@dataclass(frozen=True, slots=True)
class _SideSpec:
    object_type: str
    id_expr: Any = None  # compiled JMESPath
    lookup: Literal["property", "search"] | None = None
    lookup_type: str = ""
    lookup_id_expr: Any = None
    property: str = ""
    value_expr: Any = None
    on_multiple: OnMultiple = "first"


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule."""

    name: str
    source: str
    line: int
    equals: tuple[tuple[str, tuple[Any, ...]], ...]
    condition: Any
    sides: tuple[tuple[_SideSpec, _SideSpec], ...]

    def applies_to(self, source: str) -> bool:
        """True when the rule listens to ``source``."""
        return self.source == source or (self.source == "forms:*" and source.startswith("forms:"))


class _Lined(dict[str, Any]):
    """A mapping that remembers the line it started on, and each key's line."""

    line: int = 0
    key_lines: dict[str, int]


def _to_python(node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        out = _Lined()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, value_node in node.value:
            key = _to_python(key_node)
            key = key if isinstance(key, str) else str(key)
            out[key] = _to_python(value_node)
            out.key_lines[key] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(n) for n in node.value]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


class _Builder:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[str] = []

    def problem(self, line: int, rule: str | None, message: str) -> None:
        where = f"{self.filename}:{line}: " + (f"rule '{rule}': " if rule else "")
        self.problems.append(where + message)

    def jmes(self, text: Any, line: int, rule: str, field: str) -> Any:
        if not isinstance(text, str) or not text.strip():
            self.problem(line, rule, f"{field}: expected a JMESPath expression string")
            return None
        try:
            return jmespath.compile(text)
        except JMESPathError as exc:
            self.problem(line, rule, f"{field}: invalid JMESPath {text!r}: {str(exc).splitlines()[0]}")
            return None

    def object_type(self, value: Any, line: int, rule: str, field: str) -> str:
        try:
            return canonical_object_type(value)
        except ValueError as exc:
            self.problem(line, rule, f"{field}: {exc}")
            return "?"

    def keys(self, mapping: _Lined, allowed: set[str], rule: str, field: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.problem(
                    mapping.key_lines.get(key, mapping.line),
                    rule,
                    f"{field}: unknown key {key!r} (expected {', '.join(sorted(allowed))})",
                )

    def side(self, raw: Any, line: int, rule: str, field: str) -> _SideSpec | None:
        if not isinstance(raw, _Lined):
            self.problem(line, rule, f"{field}: expected a mapping with objectType and id or lookup")
            return None
        self.keys(raw, {"objectType", "id", "lookup"}, rule, field)
        object_type = self.object_type(raw.get("objectType"), raw.line, rule, f"{field}.objectType")
        has_id, has_lookup = "id" in raw, "lookup" in raw
        if has_id == has_lookup:
            self.problem(raw.line, rule, f"{field}: give exactly one of id or lookup")
            return None
        if has_id:
            return _SideSpec(object_type, id_expr=self.jmes(raw["id"], raw.key_lines["id"], rule, f"{field}.id"))
        lookup = raw["lookup"]
        lline = raw.key_lines["lookup"]
        if not isinstance(lookup, _Lined) or len(lookup) != 1 or next(iter(lookup)) not in ("property", "search"):
            self.problem(lline, rule, f"{field}.lookup: expected exactly one of property or search")
            return None
        kind = next(iter(lookup))
        spec = lookup[kind]
        where = f"{field}.lookup.{kind}"
        if not isinstance(spec, _Lined):
            self.problem(lline, rule, f"{where}: expected a mapping")
            return None
        if kind == "property":
            self.keys(spec, {"objectType", "id", "name"}, rule, where)
            name = spec.get("name")
            if not isinstance(name, str) or not name:
                self.problem(spec.line, rule, f"{where}.name: expected a property name")
                name = ""
            return _SideSpec(
                object_type,
                lookup="property",
                lookup_type=self.object_type(spec.get("objectType"), spec.line, rule, f"{where}.objectType"),
                lookup_id_expr=self.jmes(spec.get("id"), spec.key_lines.get("id", spec.line), rule, f"{where}.id"),
                property=name,
            )
        self.keys(spec, {"property", "value", "onMultiple"}, rule, where)
        prop = spec.get("property")
        if not isinstance(prop, str) or not prop:
            self.problem(spec.line, rule, f"{where}.property: expected a property name")
            prop = ""
        on_multiple = spec.get("onMultiple", "first")
        if on_multiple not in ("first", "skip", "dead-letter"):
            self.problem(
                spec.key_lines.get("onMultiple", spec.line),
                rule,
                f"{where}.onMultiple: expected first, skip or dead-letter, got {on_multiple!r}",
            )
            on_multiple = "first"
        return _SideSpec(
            object_type,
            lookup="search",
            property=prop,
            on_multiple=on_multiple,
            value_expr=self.jmes(spec.get("value"), spec.key_lines.get("value", spec.line), rule, f"{where}.value"),
        )

    def rule(self, raw: Any, index: int, line: int, seen: set[str]) -> Rule | None:
        if not isinstance(raw, _Lined):
            self.problem(line, None, f"rules[{index}]: expected a mapping")
            return None
        name = raw.get("name")
        label = name if isinstance(name, str) else f"#{index + 1}"
        if not isinstance(name, str) or not _NAME.match(name):
            self.problem(raw.line, label, "name: expected [a-z0-9][a-z0-9_-]* (at most 64 characters)")
        elif name in seen:
            self.problem(raw.key_lines.get("name", raw.line), label, "name: duplicate rule name")
        seen.add(label)
        self.keys(raw, {"name", "source", "when", "associations"}, label, "rule")
        source = raw.get("source")
        if not isinstance(source, str) or not _SOURCE.match(source):
            self.problem(
                raw.key_lines.get("source", raw.line),
                label,
                f"source: expected hubspot, workflow, forms:<name> or forms:*, got {source!r}",
            )
            source = "?"
        equals: list[tuple[str, tuple[Any, ...]]] = []
        condition = None
        when = raw.get("when")
        if when is not None:
            if not isinstance(when, _Lined):
                self.problem(raw.key_lines["when"], label, "when: expected a mapping")
            else:
                for key, value in when.items():
                    if key == "condition":
                        condition = self.jmes(value, when.key_lines[key], label, "when.condition")
                    elif isinstance(value, list):
                        equals.append((key, tuple(value)))
                    elif isinstance(value, str | int | float | bool):
                        equals.append((key, (value,)))
                    else:
                        self.problem(when.key_lines[key], label, f"when.{key}: expected a value or a list of values")
        associations = raw.get("associations")
        sides: list[tuple[_SideSpec, _SideSpec]] = []
        if not isinstance(associations, list) or not 1 <= len(associations) <= MAX_ASSOCIATIONS:
            self.problem(
                raw.key_lines.get("associations", raw.line),
                label,
                f"associations: expected a list of 1 to {MAX_ASSOCIATIONS}",
            )
        else:
            for i, item in enumerate(associations):
                where = f"associations[{i}]"
                iline = item.line if isinstance(item, _Lined) else raw.key_lines["associations"]
                if not isinstance(item, _Lined):
                    self.problem(iline, label, f"{where}: expected a mapping with from and to")
                    continue
                self.keys(item, {"from", "to"}, label, where)
                f = self.side(item.get("from"), item.key_lines.get("from", iline), label, f"{where}.from")
                t = self.side(item.get("to"), item.key_lines.get("to", iline), label, f"{where}.to")
                if f and t:
                    sides.append((f, t))
        return Rule(label, source, raw.line, tuple(equals), condition, tuple(sides))


class RuleSet:
    """A validated set of rules."""

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules

    @classmethod
    def empty(cls) -> RuleSet:
        """No rules: every event is acknowledged as unmatched."""
        return cls(())

    @classmethod
    def load(cls, text: str, filename: str = "<rules>") -> RuleSet:
        """Parse and validate; raise RulesError listing every problem with its line."""
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            raise RulesError([f"{filename}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
        doc = _to_python(root) if root is not None else None
        builder = _Builder(filename)
        if not isinstance(doc, _Lined) or not isinstance(doc.get("rules"), list):
            raise RulesError([f"{filename}:1: expected a mapping with a 'rules' list"])
        for key in doc:
            if key not in ("rules", "sources"):
                builder.problem(doc.key_lines[key], None, f"unknown top-level key {key!r} (expected rules, sources)")
        seen: set[str] = set()
        rules = [builder.rule(raw, i, doc.key_lines["rules"], seen) for i, raw in enumerate(doc["rules"])]
        if builder.problems:
            raise RulesError(builder.problems)
        return cls(tuple(r for r in rules if r is not None))

    @classmethod
    def from_file(cls, path: str) -> RuleSet:
        """Load a rules file (ConfigError when it cannot be read)."""
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        return cls.load(text, path)

    def evaluate(self, event: CrmEvent) -> Evaluation:
        """Run every rule for the event's source; never raises."""
        planned: list[PlannedAssociation] = []
        matched: list[str] = []
        problems: list[str] = []
        for rule in self.rules:
            if not rule.applies_to(event.source):
                continue
            try:
                if not _matches(rule, event.payload):
                    continue
            except (JMESPathError, TypeError, ValueError) as exc:
                problems.append(f"rule '{rule.name}': when.condition failed: {exc}")
                continue
            matched.append(rule.name)
            for index, (f, t) in enumerate(rule.sides):
                where = f"associations[{index}]"
                from_side = _resolve(f, event.payload, rule.name, f"{where}.from", problems)
                to_side = _resolve(t, event.payload, rule.name, f"{where}.to", problems)
                if from_side is not None and to_side is not None:
                    planned.append(PlannedAssociation(rule.name, from_side, to_side))
        return Evaluation(tuple(planned), tuple(matched), tuple(problems))

    def describe(self) -> list[dict[str, Any]]:
        """A summary for the CLI."""
        return [{"name": r.name, "source": r.source, "line": r.line, "associations": len(r.sides)} for r in self.rules]


def _matches(rule: Rule, payload: Mapping[str, Any]) -> bool:
    for key, values in rule.equals:
        if payload.get(key) not in values:
            return False
    return rule.condition is None or bool(rule.condition.search(payload))


def _search(expr: Any, payload: Mapping[str, Any]) -> Any:
    # Most rules read a top-level field ("objectId"): answer those with a dict lookup, which is about
    # twenty times cheaper than walking JMESPath's tree and gives the same result.
    parsed = getattr(expr, "parsed", None)
    if isinstance(parsed, dict) and parsed.get("type") == "field":
        return payload.get(parsed["value"]) if isinstance(payload, Mapping) else None
    try:
        return expr.search(payload)
    except (JMESPathError, TypeError, ValueError):
        return None


def _as_id(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str):
        try:
            return check_object_id(value)
        except ValueError:
            return None
    return None


def _resolve(spec: _SideSpec, payload: Mapping[str, Any], rule: str, field: str, problems: list[str]) -> Side | None:
    if spec.lookup is None:
        raw = _search(spec.id_expr, payload)
        found = _as_id(raw)
        if found is None:
            problems.append(
                f"rule '{rule}': {field}.id: "
                + (
                    f"expression '{spec.id_expr.expression}' found nothing"
                    if raw is None
                    else f"expected a record id, got {str(raw)[:40]!r}"
                )
            )
            return None
        return Fixed(spec.object_type, found)
    if spec.lookup == "property":
        raw = _search(spec.lookup_id_expr, payload)
        found = _as_id(raw)
        if found is None:
            problems.append(
                f"rule '{rule}': {field}.lookup.property.id: "
                + (
                    f"expression '{spec.lookup_id_expr.expression}' found nothing"
                    if raw is None
                    else f"expected a record id, got {str(raw)[:40]!r}"
                )
            )
            return None
        return PropertyLookup(spec.object_type, spec.lookup_type, found, spec.property)
    raw = _search(spec.value_expr, payload)
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 500:
        problems.append(
            f"rule '{rule}': {field}.lookup.search.value: expression '{spec.value_expr.expression}' gave no usable text"
        )
        return None
    return SearchLookup(spec.object_type, spec.property, raw.strip(), spec.on_multiple)
