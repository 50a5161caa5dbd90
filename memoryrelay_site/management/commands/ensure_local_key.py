
from memoryrelay_site.commands import DatabaseCommand
from memoryrelay_site.models import ApiKey
from memoryrelay_site.services import account_key_create

LOCAL_ACCOUNT = "local"


class Command(DatabaseCommand):
    help = (
        "On a database with no API key at all, create a local account and a key and print "
        "it with a ready curl line. Does nothing once any key exists."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", default="8000")

    def handle(self, *args, host: str, port: str, **options):
        if ApiKey.objects.exists():
            return
        _, raw = account_key_create(username=LOCAL_ACCOUNT, name="created by make run")
        base = f"http://{host}:{port}"
        self.stdout.write(
            "\nNo API key existed, so one was created for the account "
            f"{LOCAL_ACCOUNT!r}. It is shown only this once:\n\n"
            f"    export MEMORYRELAY_API_KEY={raw}\n\n"
            "Try it:\n\n"
            f"    curl -s -X POST {base}/v1/sessions -H \"Authorization: Bearer {raw}\" "
            "-H 'Content-Type: application/json' -d '{\"title\": \"My first session\"}'\n\n"
            "More keys: python manage.py create_api_key --user NAME [--name LABEL]\n"
        )
