from django.core.management.base import CommandError

from memoryrelay_site.commands import DatabaseCommand
from memoryrelay_site.errors import ServiceError
from memoryrelay_site.services import api_key_find, api_key_revoke


class Command(DatabaseCommand):
    help = (
        "Revoke one API key, named by the start of its visible prefix (mem_prod_Ab3, as the "
        "admin lists it), its id, or the whole key. It is refused at once (401). An unknown or "
        "ambiguous reference changes nothing and exits with an error listing the matches."
    )

    def add_arguments(self, parser):
        parser.add_argument("prefix", help="key prefix (e.g. mem_prod_Ab3), key id, or whole key")
        parser.add_argument("--dry-run", action="store_true",
                            help="say which key would be revoked, change nothing")

    def handle(self, *args, prefix: str, dry_run: bool, **options):
        try:
            key = api_key_find(ref=prefix)
        except ServiceError as error:
            raise CommandError(error.message) from None
        label = f"{key.prefix}… ({key.pk}, account {key.user.username!r})"
        if key.revoked_at is not None:
            self.stdout.write(f"API key {label} was already revoked at "
                              f"{key.revoked_at:%Y-%m-%dT%H:%M:%SZ}.")
            return
        if dry_run:
            self.stdout.write(f"Would revoke API key {label} (dry run, nothing changed).")
            return
        api_key_revoke(key=key)
        self.stdout.write(f"Revoked API key {label}.")
