from django.core.management.base import CommandError

from memoryrelay_site.commands import DatabaseCommand
from memoryrelay_site.progress import Progress
from sessions_app.services import sessions_end_stale

MAX_IDLE_HOURS = 24 * 36_500.0  # a century


class Command(DatabaseCommand):
    help = (
        "End the active sessions with no new memory for --idle-hours (a session without "
        "memories counts from its start). --summarize stores a summary built from the "
        "memories of each session it ends."
    )

    def add_arguments(self, parser):
        parser.add_argument("--idle-hours", type=float, required=True)
        parser.add_argument("--summarize", action="store_true")
        parser.add_argument("--dry-run", action="store_true", help="report counts, change nothing")

    def handle(self, *args, idle_hours: float, summarize: bool, dry_run: bool, **options):
        if not 0 < idle_hours <= MAX_IDLE_HOURS:  # inf and NaN too: no date that far back
            raise CommandError(f"--idle-hours must be more than 0 and at most "
                               f"{MAX_IDLE_HOURS:g}")
        # Progress (count, rate, time left) on stderr, every few seconds and at the end.
        label = "ending and summarizing sessions" if summarize else "ending sessions"
        report = sessions_end_stale(
            idle_hours=idle_hours, summarize_them=summarize, dry_run=dry_run,
            progress=lambda total: Progress(self.stderr.write, label, total))
        verb = "Would end" if dry_run else "Ended"
        line = f"{verb} {report.ended} sessions idle for more than {idle_hours:g} hours"
        if summarize:
            line += f"; {report.summarized} summarized"
        self.stdout.write(line + ".")
