"""Capability declarations: incoherent promises are caught at registration."""

from __future__ import annotations

import attrs
import pytest

from rivet_core.capabilities import DestinationCapabilities, WriteCommitProtocol, check_declaration


def caps(**overrides):
    values = dict(commit_protocol=WriteCommitProtocol.ATOMIC, idempotent_overwrite=True,
                  retry_safe=True, partial_write_risk=False, multi_file=True)
    values.update(overrides)
    return DestinationCapabilities(**values)


def test_coherent_declarations_pass():
    assert check_declaration(caps()) == []
    assert check_declaration(caps(commit_protocol=WriteCommitProtocol.STREAMING,
                                  idempotent_overwrite=False, retry_safe=False,
                                  partial_write_risk=True, multi_file=False)) == []


def test_every_field_except_later_additions_is_required():
    with pytest.raises(TypeError):
        DestinationCapabilities(commit_protocol=WriteCommitProtocol.ATOMIC)  # type: ignore[call-arg]
    assert attrs.fields(DestinationCapabilities).multi_file.default is False


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"partial_write_risk": False}, "partial_write_risk=True"),
    ({"retry_safe": True}, "cannot be retry_safe"),
    ({"idempotent_overwrite": True}, "idempotent_overwrite"),
])
def test_streaming_cannot_promise_what_it_cannot_keep(overrides, fragment):
    values = dict(commit_protocol=WriteCommitProtocol.STREAMING, idempotent_overwrite=False,
                  retry_safe=False, partial_write_risk=True)
    values.update(overrides)
    problems = check_declaration(DestinationCapabilities(**values))
    assert any(fragment in p for p in problems), problems


def test_non_bool_fields_and_foreign_objects_are_rejected():
    assert check_declaration(caps(retry_safe="yes"))
    assert check_declaration(caps(commit_protocol="atomic"))
    assert check_declaration(object())
