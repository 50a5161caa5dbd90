"""Decisions and patterns fixtures, on top of tests/conftest.py's chain."""

from __future__ import annotations

import pytest


def record(client, **body):
    body = {"title": "Use PostgreSQL", "rationale": "We need JSONB and pgvector.", **body}
    response = client.post("/v1/decisions", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def decision(client):
    return record(client, project_slug="northrelay", tags=["database", "architecture"],
                  agent_id="alice-laptop")
