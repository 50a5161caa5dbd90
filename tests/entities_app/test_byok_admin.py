"""Staff see accounts' extraction keys masked, never the key, and can switch them off."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from entities_app.models import ExtractionKey

SECRET = "sk-live-admin-visible-NEVER-0000"


@pytest.fixture
def staff_client(client, db):
    from django.test import Client

    staff = get_user_model().objects.create_superuser("staff", "s@example.org", "pw")
    browser = Client()
    browser.force_login(staff)
    return browser


def test_the_admin_shows_the_mask_only_and_deactivates(client, staff_client):
    key = client.post("/v1/extraction/keys", {"provider": "openai", "api_key": SECRET,
                                              "model": "gpt-4o-mini"}, format="json").json()
    listing = staff_client.get("/admin/entities_app/extractionkey/")
    page = staff_client.get(f"/admin/entities_app/extractionkey/{key['id']}/change/")
    for response in (listing, page):
        assert response.status_code == 200
        text = response.content.decode()
        assert SECRET not in text and "sk-…0000" in text
        assert ExtractionKey.objects.get().encrypted_key not in text
    ExtractionKey.objects.update(updated_at=timezone.now() - timedelta(days=1))
    before = client.get("/v1/extraction/settings").json()["keys"][0]
    done = staff_client.post("/admin/entities_app/extractionkey/", {
        "action": "deactivate", "_selected_action": [key["id"]]})
    assert done.status_code == 302
    assert not ExtractionKey.objects.get().is_active
    # A change the API shows as changed, as its own deactivation is.
    after = client.get("/v1/extraction/settings").json()["keys"][0]
    assert after["is_active"] is False and after["updated_at"] > before["updated_at"]


@pytest.mark.parametrize(("url", "secret"), [
    ("/admin/entities_app/extractionkey/", "encrypted_key"),
    ("/admin/memoryrelay_site/apikey/", "key_hash"),
])
def test_no_changelist_filters_on_a_secret_column(client, staff_client, url, secret):
    """How many rows ``?encrypted_key__gte=<prefix>`` keeps answered a yes or no about the
    stored value: a binary search read a provider key's whole token in 842 requests."""
    client.post("/v1/extraction/keys", {"provider": "openai", "api_key": SECRET,
                                        "model": "gpt-4o-mini"}, format="json")
    for lookup in (f"{secret}__gte", f"{secret}__startswith", secret, f"{secret}__lt"):
        response = staff_client.get(url, {lookup: "g"})
        assert response.status_code == 400, lookup
        assert "database error" not in response.content.decode().lower()
    assert staff_client.get(url, {"id__exact": "0"}).status_code in (200, 302)
