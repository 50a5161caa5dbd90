from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from entities_app import pipeline
from memoryrelay_site.commands import DatabaseCommand
from memoryrelay_site.progress import Progress


class Command(DatabaseCommand):
    help = (
        "Extract the entities of live memories that were never processed (written before "
        "extraction existed, or with auto_extract_entities off): queued for the task "
        "workers, or extracted here with --in-process. --redo takes every live memory "
        "(after a change of extractor)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--account", help="only this account (username)")
        parser.add_argument("--agent", help="only this agent's memories (UUID or name)")
        parser.add_argument("--limit", type=int, help="at most this many memories")
        parser.add_argument("--redo", action="store_true",
                            help="every live memory, processed before or not")
        parser.add_argument("--in-process", action="store_true",
                            help="extract here and now instead of queueing tasks")
        parser.add_argument("--dry-run", action="store_true", help="count, change nothing")

    def handle(self, *args, account, agent, limit, redo, in_process, dry_run, **options):
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1")
        user = None
        if account:
            user = get_user_model().objects.filter(username=account).first()
            if user is None:
                raise CommandError(f"no account named {account!r}")
        candidates = pipeline.backfill_candidates(account=user, agent_ref=agent, redo=redo)
        total = candidates.count()
        total = min(total, limit) if limit else total
        if dry_run:
            self.stdout.write(f"Would extract the entities of {total} memories")
            return
        verb = "extracting" if in_process else "queueing"
        progress = Progress(self.stderr.write, f"{verb} entities of memories", total)
        done = pipeline.entities_backfill(account=user, agent_ref=agent, limit=limit,
                                          redo=redo, in_process=in_process, progress=progress)
        if in_process:
            self.stdout.write(f"Extracted the entities of {done} memories with "
                              f"{pipeline.extractor().method}")
        else:
            self.stdout.write(f"Queued the entity extraction of {done} memories "
                              "(`manage.py task_worker` runs them)")
