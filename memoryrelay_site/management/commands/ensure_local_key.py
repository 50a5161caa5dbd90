import socket

from django.core.management.base import CommandError

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
        # Given (as `make run` does), the port is checked free before a key is made.
        parser.add_argument("--port")

    def handle(self, *args, host: str, port: str | None, **options):
        if ApiKey.objects.exists():
            return
        if port is not None:  # the key is shown once: not for a server that cannot start
            _refuse_a_taken_port(host, port)
        port = port or "8000"
        _, raw = account_key_create(username=LOCAL_ACCOUNT, name="created by make run")
        base = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        self.stdout.write(
            "\nNo API key existed, so one was created for the account "
            f"{LOCAL_ACCOUNT!r}. It is shown only this once:\n\n"
            f"    export MEMORYRELAY_API_KEY={raw}\n\n"
            "Try it:\n\n"
            f"    curl -s -X POST {base}/v1/sessions -H \"Authorization: Bearer {raw}\" "
            "-H 'Content-Type: application/json' -d '{\"title\": \"My first session\"}'\n\n"
            "More keys: .venv/bin/python manage.py create_api_key --user NAME [--name LABEL]\n"
        )


def _refuse_a_taken_port(host: str, port: str) -> None:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, int(port)))
    except ValueError:
        raise CommandError(f"--port must be a port number, got {port!r}") from None
    except OSError as exc:
        raise CommandError(f"the server cannot listen on {host} port {port} "
                           f"({exc.strerror or exc}): no key was made; free the port or "
                           "choose another (make run PORT=...)") from None
