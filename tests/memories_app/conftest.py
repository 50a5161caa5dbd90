"""Fixtures shared by the memories app's tests."""

from tests.taskqueue import task_queue  # noqa: F401 - the fixture, on both queue backends
