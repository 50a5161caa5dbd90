"""Fixtures shared by the client-compatibility tests."""

from tests.taskqueue import task_queue  # noqa: F401 - the fixture, on both queue backends
