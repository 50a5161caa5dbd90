"""Peak memory and time of ``manage.py export`` and ``manage.py import``.

    .venv/bin/python benchmarks/backup_bench.py [--memories 5000 50000]
        [--source-url postgres://…/db] [--target-url postgres://…/db]

For each size: loads that many memories (with random 384-float vectors, no model needed)
into the source database, exports them to a file, and imports the file into the empty
target database, each command in its own process; prints each one's wall time and peak
RSS (from wait4), and the file's size. Defaults: fresh SQLite files in a temp folder. A
PostgreSQL database given by URL is emptied of the benchmark's account first (and the
target of every account it holds). Constant memory shows as the same RSS at 5,000 and
50,000 memories. It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ACCOUNT = "backup-bench"


def populate(count: int) -> None:
    """Runs inside a child process whose DATABASE_URL is the source."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryrelay_site.settings")
    sys.path.insert(0, str(ROOT))
    django.setup()
    from datetime import timedelta

    import numpy as np
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from memories_app.models import Memory
    from sessions_app.models import Agent, Session

    get_user_model().objects.filter(username=ACCOUNT).delete()
    user = get_user_model().objects.create(username=ACCOUNT)
    agents = Agent.objects.bulk_create([Agent(account=user, name=f"agent-{n}") for n in range(5)])
    sessions = Session.objects.bulk_create(
        [Session(account=user, agent=agents[n % 5], title=f"s{n}") for n in range(count // 100)])
    rng = np.random.default_rng(1)
    start = timezone.now() - timedelta(days=30)
    for first in range(0, count, 2000):
        batch = []
        for n in range(first, min(first + 2000, count)):
            vector = rng.standard_normal(384).astype(np.float32)
            batch.append(Memory(
                account=user, agent=agents[n % 5], session=sessions[n % len(sessions)],
                content=f"Memory {n}: the deploy of service {n % 97} failed on step {n % 13} "
                        "because the cache was cold; retried with backoff.",
                metadata={"n": n}, embedding=vector / np.linalg.norm(vector),
                embedding_model="all-MiniLM-L6-v2", embedding_dimension=384,
                created_at=start + timedelta(seconds=n)))
        Memory.objects.bulk_create(batch)


def run(args: list[str], url: str) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one manage.py command in its own process."""
    env = {**os.environ, "DATABASE_URL": url, "MEMORYRELAY_EMBEDDINGS": "local"}
    started = time.perf_counter()
    child = subprocess.Popen([PYTHON, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{args[0]} failed: {child.stderr.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024


def prepare(url: str) -> None:
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([PYTHON, str(ROOT / "manage.py"), "migrate", "-v0"], cwd=ROOT, env=env,
                   check=True, timeout=600)


def empty_target(url: str) -> None:
    env = {**os.environ, "DATABASE_URL": url}
    code = ("from django.contrib.auth import get_user_model as u; "
            "u().objects.all().delete()")
    subprocess.run([PYTHON, str(ROOT / "manage.py"), "shell", "-c", code], cwd=ROOT, env=env,
                   check=True, timeout=600, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memories", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--source-url", default="")
    parser.add_argument("--target-url", default="")
    parser.add_argument("--populate", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.populate is not None:
        return populate(args.populate)
    with tempfile.TemporaryDirectory() as folder:
        print(f"{'memories':>9} {'step':>7} {'seconds':>8} {'peak RSS MB':>12} {'file MB':>8}")
        for count in args.memories:
            source = args.source_url or f"sqlite:///{folder}/source-{count}.sqlite3"
            target = args.target_url or f"sqlite:///{folder}/target-{count}.sqlite3"
            prepare(source)
            prepare(target)
            subprocess.run([PYTHON, __file__, "--populate", str(count)], check=True,
                           env={**os.environ, "DATABASE_URL": source}, timeout=1800)
            path = Path(folder) / f"export-{count}.jsonl"
            seconds, rss = run(["export", "--account", ACCOUNT, "-o", str(path)], source)
            size = path.stat().st_size / 1e6
            print(f"{count:>9} {'export':>7} {seconds:>8.1f} {rss:>12.0f} {size:>8.1f}")
            empty_target(target)
            seconds, rss = run(["import", str(path)], target)
            print(f"{count:>9} {'import':>7} {seconds:>8.1f} {rss:>12.0f}")
            path.unlink()


if __name__ == "__main__":
    main()
