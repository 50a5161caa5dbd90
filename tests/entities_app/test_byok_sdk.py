"""SDK 0.4.0 (installed) drives its ``extraction`` resource against a live test server:
every answer parses into its models, and the key never comes back."""

from __future__ import annotations

import pytest


@pytest.mark.django_db(transaction=True)
def test_sdk_040_extraction_keys_round_trip(sdk):
    from memoryrelay.exceptions import NotFoundError, ValidationError
    from memoryrelay.models import ByokKeyCreate

    empty = sdk.extraction.get_settings()
    assert (empty.byok_configured, empty.byok_active, empty.keys) == (False, False, [])
    first = sdk.extraction.create_key(ByokKeyCreate(
        provider="openai", api_key="sk-test-abcdefghijklmnop1234", model="gpt-4o-mini",
        label="main"))
    second = sdk.extraction.create_key(ByokKeyCreate(
        provider="anthropic", api_key="sk-ant-zyxwvutsrqpo9876", model="claude-haiku"))
    assert first.is_active and not second.is_active
    assert first.masked_key == "sk-…1234" and first.label == "main"
    switched = sdk.extraction.activate_key(second.id)
    assert switched.is_active and switched.model == "claude-haiku"
    now = sdk.extraction.get_settings()
    assert now.byok_active and now.masked_api_key == "sk-…9876"
    assert {k.id: k.is_active for k in now.keys} == {first.id: False, second.id: True}
    assert "abcdefghijklmnop" not in now.model_dump_json()
    assert sdk.extraction.deactivate_all_keys()["deactivated_count"] == 1
    assert sdk.extraction.delete_key(first.id)["deleted"] is True
    with pytest.raises(NotFoundError):
        sdk.extraction.delete_key(first.id)
    with pytest.raises(ValidationError):
        sdk.extraction.create_key(ByokKeyCreate(provider="custom", api_key="k", model="m"))
