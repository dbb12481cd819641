"""Hypothesis strategies shared by the unit tests."""

from __future__ import annotations

from hypothesis import strategies as st

#: Valid HubSpot record ids: 1 to 20 decimal digits, no leading zero.
object_ids = st.from_regex(r"\A[1-9][0-9]{0,19}\Z", fullmatch=True)

#: Strings that are not valid record ids.
not_object_ids = st.text(max_size=30).filter(
    lambda s: not (s.isascii() and s.isdigit() and 1 <= len(s) <= 20 and s[0] != "0")
)

#: Request bodies as raw bytes.
bodies = st.binary(max_size=2048)

#: Request URIs HubSpot could call, with some escapes in them.
uris = st.builds(
    lambda host, path, query: f"https://{host}.example.com/{path}" + (f"?{query}" if query else ""),
    st.from_regex(r"\A[a-z]{1,12}\Z", fullmatch=True),
    st.from_regex(r"\A[a-z0-9/%A-F]{0,30}\Z", fullmatch=True),
    st.from_regex(r"\A([a-z]{1,5}=[a-z0-9%]{0,8}&?){0,3}\Z", fullmatch=True),
)

#: Arbitrary JSON values (for "never raises" properties).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


# --- Association requests, retry policy and HubSpot answers ------------------------------------------------
# (test_associations.py, test_retry_policy.py, test_hubspot_client.py, test_errors.py)

#: Every spelling of a standard object HubLink accepts, with the canonical form it must become.
STANDARD_TYPE_FORMS: tuple[tuple[str, str], ...] = tuple(
    (form, plural)
    for plural, singular, type_id in (
        ("contacts", "contact", "0-1"),
        ("companies", "company", "0-2"),
        ("deals", "deal", "0-3"),
        ("tickets", "ticket", "0-5"),
        ("products", "product", "0-7"),
        ("line_items", "line_item", "0-8"),
        ("notes", "note", "0-46"),
        ("meetings", "meeting", "0-47"),
        ("calls", "call", "0-48"),
        ("emails", "email", "0-49"),
        ("tasks", "task", "0-27"),
        ("leads", "lead", "0-136"),
    )
    for form in (plural, singular, type_id)
)

#: An accepted object type spelling paired with its canonical form.
type_forms = st.sampled_from(STANDARD_TYPE_FORMS)

#: Custom object type ids (``2-<n>``, n at most 12 digits), which stay as given.
custom_type_ids = st.from_regex(r"\A2-[1-9][0-9]{0,11}\Z", fullmatch=True)

#: Strings one edit away from a valid record id: the values a careless sender actually produces.
near_miss_object_ids = st.one_of(
    st.just("0"),
    object_ids.map(lambda s: "0" + s),
    object_ids.map(lambda s: "-" + s),
    object_ids.map(lambda s: "+" + s),
    object_ids.map(lambda s: s + ".0"),
    object_ids.map(lambda s: s + "\n"),
    object_ids.map(lambda s: " " + s),
    object_ids.map(lambda s: s + "e3"),
    st.from_regex(r"\A[1-9][0-9]{20,40}\Z", fullmatch=True),
    # Arabic-Indic and fullwidth digits: str.isdigit() says yes, HubSpot says no.
    st.text(alphabet="\u0661\u0662\u0663\uff11\uff12\uff13", min_size=1, max_size=5),
)

#: JSON values that are not strings: what a sender gets when it forgets to quote an id or a type.
non_string_json = st.one_of(
    st.integers(),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)

#: Retry attempts in the range a configured budget can reach (HUBLINK_MAX_ATTEMPTS has no upper bound).
attempt_numbers = st.integers(min_value=1, max_value=200)

#: Seeds for the random source handed to the retry policy.
seeds = st.integers(min_value=0, max_value=2**64 - 1)

#: Backoff knobs as an operator might set them: (base_s, cap_s).
backoff_knobs = st.tuples(
    st.floats(min_value=0.001, max_value=120.0, allow_nan=False, allow_infinity=False),
    st.floats(min_value=0.001, max_value=86_400.0, allow_nan=False, allow_infinity=False),
)

#: Scalars where HubSpot documents an array or an object: the odd answers defensive parsing must survive.
odd_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=10))

#: Bodies a 2xx association answer could carry, from HubSpot's shape down to nonsense.
association_answer_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "status": st.sampled_from(["COMPLETE", "PENDING", "PROCESSING", "CANCELED"]) | odd_scalars,
            "results": odd_scalars
            | st.lists(
                st.fixed_dictionaries({"from": st.fixed_dictionaries({"id": odd_scalars}), "to": json_values})
                | json_values,
                max_size=3,
            ),
            "numErrors": odd_scalars,
            "errors": odd_scalars
            | st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "category": st.sampled_from(["VALIDATION_ERROR", "OBJECT_NOT_FOUND", "MISSING_SCOPES"])
                        | odd_scalars,
                        "message": odd_scalars,
                        "context": odd_scalars
                        | st.dictionaries(
                            st.sampled_from(["INVALID_OBJECT_IDS", "objectId", "missingScopes", "ids"]),
                            odd_scalars | st.lists(odd_scalars, max_size=3),
                            max_size=3,
                        ),
                    },
                )
                | json_values,
                max_size=3,
            ),
        },
    ),
)


# --- CRM events and rules (test_events.py, test_rules.py) ---------------------------------------------------

#: JSON objects of any shape (a workflow body, form fields, an event payload).
json_objects = st.dictionaries(st.text(max_size=12), json_values, max_size=6)

#: Valid HubSpot app webhook events (docs/reference/hubspot.md §4.2), ids as JSON numbers or digit strings.
hubspot_events = st.fixed_dictionaries(
    {
        "portalId": st.integers(1, 10**12) | st.integers(1, 10**12).map(str),
        "subscriptionId": st.integers(1, 10**9),
        "eventId": st.integers(0, 10**12),
        "occurredAt": st.integers(0, 4 * 10**12),
        "objectId": st.integers(1, 10**19) | object_ids,
        "subscriptionType": st.sampled_from(
            ["contact.creation", "deal.creation", "ticket.propertyChange", "company.deletion", "object.creation"]
        ),
    },
    optional={"attemptNumber": st.integers(0, 10), "changeSource": st.sampled_from(["CRM", "API", "IMPORT"])},
)

# --- webhook subscriptions (test_subscriptions.py) -----------------------------------------------------------

#: A few subscription keys, small enough that held and wanted sets overlap often.
subscription_keys = st.sampled_from(
    [
        ("deal.creation", None, None),
        ("contact.creation", None, None),
        ("deal.propertyChange", "dealstage", None),
        ("deal.propertyChange", "amount", None),
        ("object.creation", None, "0-3"),
    ]
)

#: What HubSpot may hold: (id, key, active) with distinct ids, duplicates of a key allowed.
held_subscriptions = st.lists(st.tuples(subscription_keys, st.booleans()), max_size=8).map(
    lambda items: [(str(i + 1), key, active) for i, (key, active) in enumerate(items)]
)
