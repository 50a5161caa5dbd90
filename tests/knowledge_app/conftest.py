"""Decisions and patterns fixtures, on top of tests/conftest.py's chain."""

from __future__ import annotations

import pytest

from memories_app.embeddings import get_provider


def record(client, **body):
    body = {"title": "Use PostgreSQL", "rationale": "We need JSONB and pgvector.", **body}
    response = client.post("/v1/decisions", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def decision(client):
    return record(client, project_slug="northrelay", tags=["database", "architecture"],
                  agent_id="alice-laptop")


def create_pattern(client, **body):
    body = {"title": "Errors follow RFC 7807",
            "description": "Every error response is a problem+json document.", **body}
    response = client.post("/v1/patterns", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def project(account, slug: str):
    from sessions_app.projects import project_create

    return project_create(account=account, slug=slug, name=slug.title())


def relate(source, target_slug: str, kind: str = "depends_on"):
    from sessions_app.projects import project_relate

    return project_relate(project=source, target_slug=target_slug, relationship_type=kind)[0]


def adopt(client, pattern: dict, slug: str):
    response = client.post(f"/v1/patterns/{pattern['id']}/adopt", {"project": slug},
                           format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def embed_calls(monkeypatch):
    """The texts given to the embedding provider, call by call."""
    provider = get_provider()
    calls = []
    real = provider.embed

    def counting(texts):
        calls.append(list(texts))
        return real(texts)

    monkeypatch.setattr(provider, "embed", counting)
    return calls
