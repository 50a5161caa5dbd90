"""WSGI entry point, for WSGI servers. `make run` serves memoryrelay_site/asgi.py instead:
under a thread-per-connection WSGI server a slow client holds a thread, and a body sent
with ``Transfer-Encoding: chunked`` is not read (see memoryrelay_site/server.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memoryrelay_site.settings")
application = get_wsgi_application()
