"""What the tests and the benches share. Plain helpers only: pytest fixtures stay in the
``conftest.py`` files (they build on these).

* :mod:`tests.support.paths`: the repository, its knowledge base, the tiny test knowledge base.
* :mod:`tests.support.clock`: Asia/Shanghai wall-clock times and a fixed clock.
* :mod:`tests.support.forms`: valid ID numbers and complete typed answers to both forms.
* :mod:`tests.support.answers`: a canned policy answerer for the conversation core.
* :mod:`tests.support.database`: database URLs, migrated engines, private PostgreSQL schemas.
* :mod:`tests.support.settings`: :class:`~cadrebot.settings.Settings` for a test data dir.
* :mod:`tests.support.knowledge`: the tiny knowledge base indexed on a shared warm embedder.
* :mod:`tests.support.telegram`: the real Telegram application against the fake server.
* :mod:`tests.support.cases`: cases to fill a database with.
* :mod:`tests.support.fake_telegram`: a fake Bot API server and scripted users.
* :mod:`tests.support.processes`: bot processes' environment, ``cadrebot serve`` spawned.
"""
