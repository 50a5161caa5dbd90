"""RQ's dashboard in the admin (django-rq): superusers only."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.taskqueue import redis_or_skip

DASHBOARD = "/admin/django_rq/dashboard/"


def signed_in(**flags) -> Client:
    user = get_user_model().objects.create_user(
        f"staff-{len(flags)}-{'-'.join(flags)}", password="pw", is_staff=True, **flags)
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["", "queues/0/", "queues/0/empty/", "queues/0/requeue-all/",
                                  "queues/0/failed/clear/", "workers/0/"])
def test_staff_without_superuser_status_get_no_page_of_rqs_dashboard(page):
    """django-rq let any active staff account in, whatever its permissions: queues, jobs,
    "empty queue", delete and requeue."""
    staff = signed_in()
    assert staff.get(DASHBOARD + page).status_code == 403
    assert staff.post(DASHBOARD + page).status_code == 403
    index = staff.get("/admin/")
    assert index.status_code == 200 and DASHBOARD.encode() not in index.content


@pytest.mark.django_db
def test_a_superuser_sees_the_dashboard_and_its_made_up_object_pages_are_not_found():
    redis_or_skip()  # the dashboard reads the queues
    boss = signed_in(is_superuser=True)
    assert boss.get(DASHBOARD).status_code == 200
    assert DASHBOARD.encode() in boss.get("/admin/").content
    for page in ("-1/change/", "1/history/", "1/delete/"):
        assert boss.get(DASHBOARD + page).status_code == 404, page


@pytest.mark.django_db
def test_signing_in_is_asked_of_a_visitor():
    response = Client().get(DASHBOARD)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
