from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import transaction

from entities_app import graph
from memoryrelay_site.commands import DatabaseCommand


class Command(DatabaseCommand):
    help = (
        "Recompute the entity co-occurrence table (what the relationships and neighborhood "
        "endpoints read) from the links. Database triggers keep it exact; this is for links "
        "loaded with the triggers off, and --check tells whether it differs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--account", help="only this account (username)")
        parser.add_argument("--check", action="store_true",
                            help="compare with a recomputation, change nothing; exit 1 if "
                                 "they differ")

    def handle(self, *args, account, check, **options):
        account_id = None
        if account:
            user = get_user_model().objects.filter(username=account).first()
            if user is None:
                raise CommandError(f"no account named {account!r}")
            account_id = user.pk
        with transaction.atomic():
            before = graph.cooccurrence_rows(account_id=account_id)
            count = graph.cooccurrence_rebuild(account_id=account_id)
            after = graph.cooccurrence_rows(account_id=account_id)
            differing = sum(1 for pair in before.keys() | after.keys()
                            if before.get(pair) != after.get(pair))
            if check:
                transaction.set_rollback(True)
        if check:
            self.stdout.write(f"{differing} of {len(after)} co-occurring pairs differ")
            if differing:
                raise CommandError("the co-occurrence table is not exact: run "
                                   "entity_graph_rebuild without --check")
            return
        self.stdout.write(f"Rebuilt {count} co-occurring pairs ({differing} were off)")
